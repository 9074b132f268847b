// Package webhook is a plugin that POSTs the broker's events to a URL as
// JSON: connected, disconnected, session_created, session_resumed,
// session_terminated, subscribed, unsubscribed and published (each
// message as it is published, through a Publish hook that passes it on
// unchanged).
//
// # Never blocking the loop
//
// The hooks run on the event loops. Each copies what it needs into an
// Event and offers it to a bounded queue (Config.QueueSize) without
// waiting: when the queue is full the event is dropped and counted
// (mcutie_webhook_events_total{result="dropped"}). One goroutine takes
// events off the queue into batches of up to Config.BatchSize, sent when
// full or Config.Interval after the first event of the batch, as one JSON
// array per POST. A batch that fails (a transport error or a status other
// than 2xx) is retried Config.Retries times with exponential backoff
// (Config.Backoff doubling up to Config.MaxBackoff); then it is given up
// and counted as failed. While a batch is retried, new events wait in the
// queue, and past its bound they are dropped: a slow or dead endpoint
// costs events, never the broker's latency. On Stop what is queued is sent
// once more, without retries.
//
// Each published message costs its topic copied (and its payload, with
// Config.IncludePayload) and a channel send; select the events you need
// (Config.Events) and, for published, the topics (Config.Filters).
//
// # Format
//
//	[{"event":"connected","time":"2026-01-02T15:04:05.123Z","clientid":"c1","username":"ann",
//	  "remote":"10.0.0.7:51234","protocol":5,"session_present":false},
//	 {"event":"published","time":"…","clientid":"c1","topic":"a/b","qos":1,"retain":false,
//	  "origin":"client","payload":"aGk="}]
//
// The payload is base64 (JSON's encoding of bytes). session_terminated
// has a reason: expired, cleaned or taken_over; disconnected the broker's
// close reason.
//
// Metrics (WriteMetrics): mcutie_webhook_events_total{result=queued|sent|
// dropped|failed}, mcutie_webhook_batches_total{result=ok|failed},
// mcutie_webhook_retries_total, mcutie_webhook_queue_length.
package webhook
