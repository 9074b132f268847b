package admin

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mcutie/mcutie/broker"
)

// maxMatch bounds the match parameter: a filter longer than any client id
// or topic the broker keeps matches nothing anyway.
const maxMatch = 65535

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// brokerError maps an error of the broker's management API to a status.
func brokerError(err error) (int, any) {
	switch {
	case errors.Is(err, broker.ErrQueryWindow):
		return errorf(http.StatusBadRequest, "page × limit goes beyond %d items: follow the next cursor with ?after=<next> for deeper pages", broker.MaxQueryWindow)
	case errors.Is(err, broker.ErrNotServing), errors.Is(err, broker.ErrClosed):
		return errorf(http.StatusServiceUnavailable, "the broker is not serving (starting or stopping): retry later")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errorf(http.StatusServiceUnavailable, "the broker's event loops did not answer in time (busy): retry later")
	case errors.Is(err, broker.ErrInboxFull):
		return errorf(http.StatusServiceUnavailable, "the broker is overloaded (event loop inbox full): retry later")
	}
	return errorf(http.StatusBadRequest, "%v", err)
}

func (a *API) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), a.o.QueryTimeout)
}

// ---- paging ----

// page is what a list request asked for.
type page struct {
	q     broker.Query
	page  int
	limit int
}

// pageJSON is every list's envelope.
type pageJSON[T any] struct {
	Items []T    `json:"items"`
	Total int    `json:"total"`
	Page  int    `json:"page"`
	Limit int    `json:"limit"`
	Next  string `json:"next"`
}

func encodeCursor(key string) string {
	if key == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(key))
}

// parsePage reads page, limit, after and match.
func (a *API) parsePage(r *http.Request) (page, error) {
	qv := r.URL.Query()
	p := page{page: 1, limit: a.o.DefaultPageSize}
	if s := qv.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return p, errors.New("page must be a whole number from 1")
		}
		p.page = n
	}
	if s := qv.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > a.o.MaxPageSize {
			return p, errors.New("limit must be a whole number from 1 to " + strconv.Itoa(a.o.MaxPageSize) + " (--admin-max-page-size); there is no \"all\": follow next")
		}
		p.limit = n
	}
	if p.page > broker.MaxQueryWindow || p.page*p.limit > broker.MaxQueryWindow { // (page first: no overflow)
		return p, errors.New("page × limit goes beyond " + strconv.Itoa(broker.MaxQueryWindow) + " items: follow the next cursor with ?after=<next> for deeper pages")
	}
	if s := qv.Get("after"); s != "" {
		k, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			return p, errors.New("after must be the next value of a previous page, as given")
		}
		p.q.After = string(k)
	}
	p.q.Match = qv.Get("match")
	if len(p.q.Match) > maxMatch {
		return p, errors.New("match is too long")
	}
	p.q.Offset, p.q.Limit = (p.page-1)*p.limit, p.limit
	return p, nil
}

func bad(err error) (int, any) { return errorf(http.StatusBadRequest, "%v", err) }

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ---- stats ----

type ratesJSON struct {
	MessagesReceived float64 `json:"messages_received"`
	MessagesSent     float64 `json:"messages_sent"`
	BytesReceived    float64 `json:"bytes_received"`
	BytesSent        float64 `json:"bytes_sent"`
	Dropped          float64 `json:"dropped"`
}

type statsJSON struct {
	NodeID              string            `json:"node_id"`
	Version             string            `json:"version"`
	StartTime           time.Time         `json:"start_time"`
	UptimeSeconds       float64           `json:"uptime_seconds"`
	Connections         uint64            `json:"connections"`
	Connected           uint64            `json:"connected"`
	Sessions            uint64            `json:"sessions"`
	Subscriptions       uint64            `json:"subscriptions"`
	SharedSubscriptions uint64            `json:"shared_subscriptions"`
	Retained            uint64            `json:"retained"`
	RetainedBytes       uint64            `json:"retained_bytes"`
	Inflight            uint64            `json:"inflight"`
	Queued              uint64            `json:"queued"`
	QueuedBytes         uint64            `json:"queued_bytes"`
	MessagesReceived    uint64            `json:"messages_received"`
	MessagesSent        uint64            `json:"messages_sent"`
	BytesReceived       uint64            `json:"bytes_received"`
	BytesSent           uint64            `json:"bytes_sent"`
	Dropped             uint64            `json:"dropped"`
	DroppedByReason     map[string]uint64 `json:"dropped_by_reason"`
	ConnectsRefused     uint64            `json:"connects_refused"`
	StoreBacklogOps     uint64            `json:"store_backlog_ops"`
	StoreCommits        uint64            `json:"store_commits"`
	StoreCommitSeconds  float64           `json:"store_commit_seconds"`
	Loops               int               `json:"loops"`
	PerSecond           ratesJSON         `json:"per_second"`
}

func (a *API) stats(_ http.ResponseWriter, r *http.Request) (int, any) {
	ctx, cancel := a.ctx(r)
	defer cancel()
	st, err := a.b.StatsNow(ctx) // on a timeout: the figures of the last tick
	if err != nil {
		a.log.Debug("admin: stats from the last tick", "err", err)
	}
	j := statsJSON{
		NodeID: st.NodeID, Version: a.o.Version, StartTime: st.StartTime.UTC(), UptimeSeconds: st.Uptime.Seconds(),
		Connections: st.Clients, Connected: st.Connected, Sessions: st.Sessions, Subscriptions: st.Subscriptions,
		SharedSubscriptions: st.SharedSubscriptions, Retained: st.Retained, RetainedBytes: st.RetainedBytes,
		Inflight: st.Inflight, Queued: st.Queued, QueuedBytes: st.QueuedBytes,
		BytesReceived: st.BytesIn, BytesSent: st.BytesOut, DroppedByReason: st.Dropped,
		ConnectsRefused: st.ConnectsRefused, StoreBacklogOps: st.StoreBacklogOps, Loops: len(st.Loops),
		StoreCommits: st.StoreBatches, StoreCommitSeconds: st.StoreCommitSeconds,
	}
	for q := 0; q < 3; q++ {
		j.MessagesReceived += st.PublishIn[q]
		j.MessagesSent += st.PublishOut[q]
	}
	for r, n := range st.Dropped {
		if r != "no_subscribers" { // not a loss: nobody asked for it
			j.Dropped += n
		}
	}
	rt := a.rates.sample(time.Now(), [5]uint64{j.MessagesReceived, j.MessagesSent, j.BytesReceived, j.BytesSent, j.Dropped})
	j.PerSecond = ratesJSON{MessagesReceived: rt[0], MessagesSent: rt[1], BytesReceived: rt[2], BytesSent: rt[3], Dropped: rt[4]}
	return http.StatusOK, j
}

// ---- clients ----

type subscriptionJSON struct {
	ClientID          string `json:"client_id"`
	Filter            string `json:"filter"`
	QoS               byte   `json:"qos"`
	NoLocal           bool   `json:"no_local"`
	RetainAsPublished bool   `json:"retain_as_published"`
	RetainHandling    byte   `json:"retain_handling"`
	Identifier        uint32 `json:"identifier"`
	Shared            bool   `json:"shared"`
}

func subJSON(s broker.SubscriptionInfo) subscriptionJSON {
	return subscriptionJSON{ClientID: s.ClientID, Filter: s.Filter, QoS: s.QoS, NoLocal: s.NoLocal,
		RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, Identifier: s.Identifier,
		Shared: strings.HasPrefix(s.Filter, "$share/")}
}

type clientJSON struct {
	ClientID          string     `json:"client_id"`
	Connected         bool       `json:"connected"`
	Protocol          string     `json:"protocol"`
	Address           string     `json:"address"`
	Username          string     `json:"username"`
	KeepAlive         uint16     `json:"keep_alive"`
	ExpiryInterval    uint32     `json:"expiry_interval"`
	SubscriptionCount int        `json:"subscription_count"`
	Inflight          int        `json:"inflight"`
	Queued            int        `json:"queued"`
	ConnectedAt       *time.Time `json:"connected_at"`
	DisconnectedAt    *time.Time `json:"disconnected_at"`
	Loop              int        `json:"loop"`
}

type clientDetailJSON struct {
	clientJSON
	Subscriptions []subscriptionJSON `json:"subscriptions"`
}

func clientOf(s *broker.SessionStatus) clientJSON {
	return clientJSON{ClientID: s.ClientID, Connected: s.Connected, Protocol: s.Protocol, Address: s.Address,
		Username: s.Username, KeepAlive: s.KeepAlive, ExpiryInterval: s.ExpiryInterval,
		SubscriptionCount: s.Subscriptions, Inflight: s.Inflight, Queued: s.Queued,
		ConnectedAt: timeOrNil(s.ConnectedAt), DisconnectedAt: timeOrNil(s.DisconnectedAt), Loop: s.Loop}
}

func (a *API) listClients(_ http.ResponseWriter, r *http.Request) (int, any) {
	p, err := a.parsePage(r)
	if err != nil {
		return bad(err)
	}
	switch p.q.State = r.URL.Query().Get("state"); p.q.State {
	case "", "connected", "offline":
	default:
		return errorf(http.StatusBadRequest, "state must be connected or offline (or absent: both)")
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	pg, err := a.b.Sessions(ctx, p.q)
	if err != nil {
		return brokerError(err)
	}
	out := pageJSON[clientJSON]{Items: make([]clientJSON, 0, len(pg.Items)), Total: pg.Total, Page: p.page, Limit: p.limit, Next: encodeCursor(pg.Next)}
	for i := range pg.Items {
		out.Items = append(out.Items, clientOf(&pg.Items[i]))
	}
	return http.StatusOK, out
}

func (a *API) getClient(_ http.ResponseWriter, r *http.Request) (int, any) {
	id := r.PathValue("id")
	ctx, cancel := a.ctx(r)
	defer cancel()
	s, ok, err := a.b.Session(ctx, id)
	if err != nil {
		return brokerError(err)
	}
	if !ok {
		return errorf(http.StatusNotFound, "no session for client id %q: list them with GET /api/v1/clients", id)
	}
	d := clientDetailJSON{clientJSON: clientOf(&s), Subscriptions: make([]subscriptionJSON, 0, len(s.SubscriptionsList))}
	for _, sub := range s.SubscriptionsList {
		d.Subscriptions = append(d.Subscriptions, subJSON(sub))
	}
	return http.StatusOK, d
}

type deleteClientJSON struct {
	ClientID         string `json:"client_id"`
	SessionDiscarded bool   `json:"session_discarded"`
}

func (a *API) deleteClient(_ http.ResponseWriter, r *http.Request) (int, any) {
	id := r.PathValue("id")
	discard, err := boolParam(r, "session")
	if err != nil {
		return bad(err)
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	found, err := a.b.DisconnectClient(ctx, id, discard)
	if err != nil {
		return brokerError(err)
	}
	if !found {
		return errorf(http.StatusNotFound, "no session for client id %q: list them with GET /api/v1/clients", id)
	}
	a.log.Info("admin: client disconnected", "client", id, "session_discarded", discard, "remote", r.RemoteAddr)
	return http.StatusOK, deleteClientJSON{ClientID: id, SessionDiscarded: discard}
}

func boolParam(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, errors.New(name + " must be true or false")
	}
	return v, nil
}

// ---- subscriptions ----

func (a *API) listSubscriptions(_ http.ResponseWriter, r *http.Request) (int, any) {
	p, err := a.parsePage(r)
	if err != nil {
		return bad(err)
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	pg, err := a.b.Subscriptions(ctx, p.q)
	if err != nil {
		return brokerError(err)
	}
	out := pageJSON[subscriptionJSON]{Items: make([]subscriptionJSON, 0, len(pg.Items)), Total: pg.Total, Page: p.page, Limit: p.limit, Next: encodeCursor(pg.Next)}
	for _, s := range pg.Items {
		out.Items = append(out.Items, subJSON(s))
	}
	return http.StatusOK, out
}

// ---- retained ----

type retainedJSON struct {
	Topic    string     `json:"topic"`
	Size     int        `json:"size"`
	QoS      byte       `json:"qos"`
	Created  time.Time  `json:"created"`
	ExpireAt *time.Time `json:"expire_at"`
}

type userPropJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// propsJSON are a message's MQTT 5 properties. CorrelationData is base64
// (standard, padded): it is binary by nature.
type propsJSON struct {
	PayloadFormat   byte           `json:"payload_format"`
	ContentType     string         `json:"content_type"`
	ResponseTopic   string         `json:"response_topic"`
	CorrelationData string         `json:"correlation_data"`
	UserProperties  []userPropJSON `json:"user_properties"`
	MessageExpiry   uint32         `json:"message_expiry"`
}

type retainedDetailJSON struct {
	retainedJSON
	Payload         string    `json:"payload"`
	PayloadEncoding string    `json:"payload_encoding"`
	Properties      propsJSON `json:"properties"`
}

func retainedOf(ri *broker.RetainedInfo) retainedJSON {
	return retainedJSON{Topic: ri.Topic, Size: ri.Size, QoS: ri.QoS, Created: ri.Created.UTC(), ExpireAt: timeOrNil(ri.ExpireAt)}
}

func (a *API) listRetained(_ http.ResponseWriter, r *http.Request) (int, any) {
	p, err := a.parsePage(r)
	if err != nil {
		return bad(err)
	}
	pg, err := a.b.RetainedMessages(p.q)
	if err != nil {
		return brokerError(err)
	}
	out := pageJSON[retainedJSON]{Items: make([]retainedJSON, 0, len(pg.Items)), Total: pg.Total, Page: p.page, Limit: p.limit, Next: encodeCursor(pg.Next)}
	for i := range pg.Items {
		out.Items = append(out.Items, retainedOf(&pg.Items[i]))
	}
	return http.StatusOK, out
}

func (a *API) getRetained(_ http.ResponseWriter, r *http.Request) (int, any) {
	topic := r.PathValue("topic")
	enc := r.URL.Query().Get("payload_encoding")
	if enc != "" && enc != "text" && enc != "base64" {
		return errorf(http.StatusBadRequest, "payload_encoding must be text or base64 (absent: text when the payload is UTF-8, else base64)")
	}
	ri, ok := a.b.RetainedMessage(topic)
	if !ok {
		return errorf(http.StatusNotFound, "no retained message on topic %q (encode / in a topic as %%2F when a level is empty): list them with GET /api/v1/retained", topic)
	}
	m := ri.Message
	if enc == "" {
		enc = "text"
		if !utf8.Valid(m.Payload) {
			enc = "base64"
		}
	}
	d := retainedDetailJSON{retainedJSON: retainedOf(&ri), PayloadEncoding: enc}
	if enc == "text" {
		d.Payload = strings.ToValidUTF8(string(m.Payload), "\uFFFD")
	} else {
		d.Payload = base64.StdEncoding.EncodeToString(m.Payload)
	}
	d.Properties = propsJSON{PayloadFormat: m.PayloadFormat, ContentType: m.ContentType, ResponseTopic: m.ResponseTopic,
		CorrelationData: base64.StdEncoding.EncodeToString(m.CorrelationData), UserProperties: make([]userPropJSON, 0, len(m.UserProperties))}
	if !ri.ExpireAt.IsZero() {
		d.Properties.MessageExpiry = uint32(max(time.Until(ri.ExpireAt).Round(time.Second)/time.Second, 0))
	}
	for _, u := range m.UserProperties {
		d.Properties.UserProperties = append(d.Properties.UserProperties, userPropJSON{Key: u.Key, Value: u.Value})
	}
	return http.StatusOK, d
}

type deleteRetainedJSON struct {
	Topic   string `json:"topic"`
	Deleted bool   `json:"deleted"`
}

func (a *API) deleteRetained(_ http.ResponseWriter, r *http.Request) (int, any) {
	topic := r.PathValue("topic")
	ctx, cancel := a.ctx(r)
	defer cancel()
	ok, err := a.b.DeleteRetained(ctx, topic)
	if err != nil {
		return brokerError(err)
	}
	if !ok {
		return errorf(http.StatusNotFound, "no retained message on topic %q: list them with GET /api/v1/retained", topic)
	}
	a.log.Info("admin: retained message deleted", "topic", topic, "remote", r.RemoteAddr)
	return http.StatusOK, deleteRetainedJSON{Topic: topic, Deleted: true}
}

// ---- publish ----

// publishRequest is POST /api/v1/publish's body.
type publishRequest struct {
	Topic           string        `json:"topic"`
	Payload         string        `json:"payload"`
	PayloadEncoding string        `json:"payload_encoding"`
	QoS             int           `json:"qos"`
	Retain          bool          `json:"retain"`
	Properties      *publishProps `json:"properties"`
}

type publishProps struct {
	PayloadFormat   int            `json:"payload_format"`
	ContentType     string         `json:"content_type"`
	ResponseTopic   string         `json:"response_topic"`
	CorrelationData string         `json:"correlation_data"`
	UserProperties  []userPropJSON `json:"user_properties"`
	MessageExpiry   uint32         `json:"message_expiry"`
}

type publishJSON struct {
	Topic        string `json:"topic"`
	QoS          int    `json:"qos"`
	Retain       bool   `json:"retain"`
	PayloadBytes int    `json:"payload_bytes"`
}

// decodeJSON reads r's body strictly into v: one JSON object, no unknown
// field, no trailing data.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("the body is not the JSON expected: " + err.Error())
	}
	if dec.More() {
		return errors.New("the body holds more than one JSON value")
	}
	return nil
}

// parsePublish turns a publish body into a Publication, or says what is
// wrong with it.
func parsePublish(body []byte) (broker.Publication, error) {
	var req publishRequest
	var pm broker.Publication
	if err := decodeJSON(body, &req); err != nil {
		return pm, err
	}
	if req.Topic == "" {
		return pm, errors.New("topic is required")
	}
	if req.QoS < 0 || req.QoS > 2 {
		return pm, errors.New("qos must be 0, 1 or 2")
	}
	pm.Topic, pm.QoS, pm.Retain = req.Topic, byte(req.QoS), req.Retain
	switch req.PayloadEncoding {
	case "", "text":
		pm.Payload = []byte(req.Payload)
	case "base64":
		p, err := base64.StdEncoding.DecodeString(req.Payload)
		if err != nil {
			return pm, errors.New("payload is not standard base64 (payload_encoding base64): " + err.Error())
		}
		pm.Payload = p
	default:
		return pm, errors.New("payload_encoding must be text or base64")
	}
	if pp := req.Properties; pp != nil {
		if pp.PayloadFormat != 0 && pp.PayloadFormat != 1 {
			return pm, errors.New("properties.payload_format must be 0 (bytes) or 1 (UTF-8 text)")
		}
		pm.PayloadFormat = byte(pp.PayloadFormat)
		pm.ContentType, pm.ResponseTopic = pp.ContentType, pp.ResponseTopic
		if pp.CorrelationData != "" {
			cd, err := base64.StdEncoding.DecodeString(pp.CorrelationData)
			if err != nil {
				return pm, errors.New("properties.correlation_data is not standard base64: " + err.Error())
			}
			pm.CorrelationData = cd
		}
		for _, u := range pp.UserProperties {
			pm.UserProperties = append(pm.UserProperties, broker.UserProperty{Key: u.Key, Value: u.Value})
		}
		pm.MessageExpiry = time.Duration(pp.MessageExpiry) * time.Second
	}
	return pm, nil
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, errors.New("the body is larger than " + strconv.FormatInt(mb.Limit, 10) + " bytes")
		}
		return nil, errors.New("cannot read the body: " + err.Error())
	}
	return b, nil
}

func (a *API) publish(_ http.ResponseWriter, r *http.Request) (int, any) {
	body, err := readBody(r)
	if err != nil {
		return bad(err)
	}
	pm, err := parsePublish(body)
	if err != nil {
		return bad(err)
	}
	ctx, cancel := a.ctx(r)
	defer cancel()
	switch err := a.b.PublishMessage(ctx, pm); {
	case err == nil:
	case errors.Is(err, broker.ErrQuotaExceeded):
		return errorf(http.StatusConflict, "published, but a subscriber's queue (or the retained store) was full and missed it: see mcutie_messages_dropped_total")
	case errors.Is(err, broker.ErrNotStored):
		return errorf(http.StatusConflict, "routed, but the store failed to keep what it caused: check the store (GET /readyz)")
	case errors.Is(err, broker.ErrDropped):
		return errorf(http.StatusConflict, "a publish hook (plugin) dropped the message")
	case errors.Is(err, context.DeadlineExceeded):
		return errorf(http.StatusServiceUnavailable, "not confirmed within %v (subscribers far behind or the store slow): it may still be delivered", a.o.QueryTimeout)
	default:
		return brokerError(err)
	}
	return http.StatusOK, publishJSON{Topic: pm.Topic, QoS: int(pm.QoS), Retain: pm.Retain, PayloadBytes: len(pm.Payload)}
}

// ---- bans ----

type banJSON struct {
	Kind             string    `json:"kind"`
	Value            string    `json:"value"`
	Until            time.Time `json:"until"`
	RemainingSeconds float64   `json:"remaining_seconds"`
	Admin            bool      `json:"admin"`
}

type banRequest struct {
	Kind       string `json:"kind"`
	Value      string `json:"value"`
	Duration   string `json:"duration"`
	Disconnect *bool  `json:"disconnect"`
}

type banAddedJSON struct {
	banJSON
	Disconnected int `json:"disconnected"`
}

type banRemovedJSON struct {
	Kind    string `json:"kind"`
	Value   string `json:"value"`
	Removed bool   `json:"removed"`
}

func banOf(b broker.BanInfo, now time.Time) banJSON {
	return banJSON{Kind: b.Kind, Value: b.Value, Until: b.Until.UTC(), RemainingSeconds: max(b.Until.Sub(now).Seconds(), 0), Admin: b.Admin}
}

func (a *API) listBans(_ http.ResponseWriter, r *http.Request) (int, any) {
	p, err := a.parsePage(r)
	if err != nil {
		return bad(err)
	}
	now := time.Now()
	var all []banJSON
	for _, b := range a.b.Bans() {
		key := b.Kind + "\x00" + b.Value
		if p.q.After != "" && key <= p.q.After {
			continue
		}
		if p.q.Match != "" && !strings.Contains(b.Value, p.q.Match) {
			continue
		}
		all = append(all, banOf(b, now))
	}
	out := pageJSON[banJSON]{Items: []banJSON{}, Total: len(all), Page: p.page, Limit: p.limit}
	if p.q.Offset < len(all) {
		out.Items = all[p.q.Offset:min(p.q.Offset+p.limit, len(all))]
	}
	if n := p.q.Offset + len(out.Items); n < len(all) && len(out.Items) > 0 {
		last := out.Items[len(out.Items)-1]
		out.Next = encodeCursor(last.Kind + "\x00" + last.Value)
	}
	return http.StatusOK, out
}

// parseBan checks a ban body.
func parseBan(body []byte) (banRequest, time.Duration, error) {
	var req banRequest
	if err := decodeJSON(body, &req); err != nil {
		return req, 0, err
	}
	if req.Kind != broker.BanAddress && req.Kind != broker.BanClientID {
		return req, 0, errors.New(`kind must be "address" (an IP address) or "client_id"`)
	}
	if req.Value == "" {
		return req, 0, errors.New("value is required: the IP address or the client id")
	}
	d, err := time.ParseDuration(req.Duration)
	if err != nil || d < time.Second {
		return req, 0, errors.New(`duration must be a Go duration of at least 1s, e.g. "90s", "10m", "24h"`)
	}
	return req, d, nil
}

func (a *API) addBan(_ http.ResponseWriter, r *http.Request) (int, any) {
	body, err := readBody(r)
	if err != nil {
		return bad(err)
	}
	req, d, err := parseBan(body)
	if err != nil {
		return bad(err)
	}
	bi, err := a.b.Ban(req.Kind, req.Value, d)
	if err != nil {
		if errors.Is(err, broker.ErrBanListFull) {
			return errorf(http.StatusConflict, "%v", err)
		}
		return bad(err)
	}
	out := banAddedJSON{banJSON: banOf(bi, time.Now())}
	if req.Disconnect == nil || *req.Disconnect {
		ctx, cancel := a.ctx(r)
		defer cancel()
		n, err := a.b.DisconnectBanned(ctx, req.Kind, req.Value)
		if err != nil {
			return brokerError(err)
		}
		out.Disconnected = n
	}
	a.log.Info("admin: ban set", "kind", req.Kind, "value", req.Value, "for", d, "disconnected", out.Disconnected, "remote", r.RemoteAddr)
	return http.StatusCreated, out
}

func (a *API) removeBan(_ http.ResponseWriter, r *http.Request) (int, any) {
	kind, value := r.URL.Query().Get("kind"), r.URL.Query().Get("value")
	was, err := a.b.Unban(kind, value)
	if err != nil {
		return errorf(http.StatusBadRequest, "give ?kind=address&value=<ip> or ?kind=client_id&value=<id>: %v", err)
	}
	if !was {
		return errorf(http.StatusNotFound, "no ban in force on %s %q: list them with GET /api/v1/bans", kind, value)
	}
	a.log.Info("admin: ban lifted", "kind", kind, "value", value, "remote", r.RemoteAddr)
	return http.StatusOK, banRemovedJSON{Kind: kind, Value: value, Removed: true}
}

// ---- listeners and config ----

type listenerJSON struct {
	Kind    string `json:"kind"`
	Address string `json:"address"`
	URL     string `json:"url"`
	Proxy   bool   `json:"proxy"`
}

type listenersJSON struct {
	Listeners []listenerJSON `json:"listeners"`
}

func (a *API) listeners(_ http.ResponseWriter, _ *http.Request) (int, any) {
	out := listenersJSON{Listeners: []listenerJSON{}}
	if a.o.Listeners != nil {
		for _, l := range a.o.Listeners() {
			out.Listeners = append(out.Listeners, listenerJSON(l))
		}
	}
	return http.StatusOK, out
}

type settingJSON struct {
	Name    string `json:"name"`
	Value   string `json:"value"`
	Default string `json:"default"`
	Changed bool   `json:"changed"`
	Secret  bool   `json:"secret"`
}

type configJSON struct {
	Settings []settingJSON `json:"settings"`
}

func (a *API) config(_ http.ResponseWriter, _ *http.Request) (int, any) {
	out := configJSON{Settings: []settingJSON{}}
	if a.o.Config != nil {
		for _, s := range a.o.Config() {
			out.Settings = append(out.Settings, settingJSON(s))
		}
	}
	return http.StatusOK, out
}
