package broker

import "github.com/mcutie/mcutie/codec"

// Topic aliases of a v5 connection (Client.aliases, allocated on first
// use): the inbound ones the client sets (up to Options.TopicAliasMaximum,
// MQTT-3.3.2-12) and the outbound ones the broker assigns to the topics it
// sends, so a device that receives the same topics over and over is sent
// two bytes of alias instead of the topic (MQTT-3.3.2-7 ff., a MAY). The
// outbound ones are a least-recently-used set of at most the client's Topic
// Alias Maximum (MQTT-3.1.2-26) and Options.OutboundTopicAliases.
// Loop-only.
type topicAliases struct {
	in [][]byte // inbound, index = alias-1

	outMax   uint16            // 0: no outbound aliases on this connection
	out      map[string]uint16 // topic → alias
	outTopic []string          // alias-1 → its topic
	outUsed  []uint64          // alias-1 → when last sent (outClock)
	outClock uint64
}

// minAliasedTopic is the shortest topic given an outbound alias: the alias
// property costs three bytes, so shorter topics gain nothing.
const minAliasedTopic = 4

func (c *Client) topicAliases() *topicAliases {
	if c.aliases == nil {
		c.aliases = new(topicAliases)
	}
	return c.aliases
}

// resolveAlias applies an inbound Topic Alias [MQTT-3.3.2-12].
func (c *Client) resolveAlias(p *codec.Publish) error {
	a := p.Props.TopicAlias
	max := c.l.b.opts.TopicAliasMaximum
	if a == 0 || a > max {
		return &codec.ReasonError{Code: codec.TopicAliasInvalid, Reason: "topic alias out of range", SpecID: "MQTT-3.3.2-12"}
	}
	ta := c.topicAliases()
	if ta.in == nil {
		ta.in = make([][]byte, max)
	}
	slot := &ta.in[a-1]
	if len(p.Topic) > 0 {
		*slot = append((*slot)[:0], p.Topic...)
		return nil
	}
	if len(*slot) == 0 {
		// §3.3.2.1: an empty topic with an unknown alias is a protocol error.
		return errProtocol("topic alias not set", "MQTT-3.3.2-7")
	}
	p.Topic = *slot
	return nil
}

// allowOutboundAliases sets up outbound aliases for a client whose CONNECT
// allows clientMax of them. Loop-only.
func (c *Client) allowOutboundAliases(clientMax uint16) {
	n := min(clientMax, c.l.b.opts.OutboundTopicAliases)
	if n == 0 {
		return
	}
	c.topicAliases().outMax = n
}

// outboundAlias is the alias to send topic with: known says the client
// has it already (the topic can be left out); otherwise alias is the one
// to assign with this PUBLISH, which useAlias then records. 0: none.
// Loop-only.
func (ta *topicAliases) outboundAlias(topic []byte) (alias uint16, known bool) {
	if ta == nil || ta.outMax == 0 || len(topic) < minAliasedTopic {
		return 0, false
	}
	if a, ok := ta.out[string(topic)]; ok {
		return a, true
	}
	if len(ta.outTopic) < int(ta.outMax) {
		return uint16(len(ta.outTopic) + 1), false
	}
	// All in use: the least recently sent one is reassigned.
	lru := 0
	for i, t := range ta.outUsed {
		if t < ta.outUsed[lru] {
			lru = i
		}
	}
	return uint16(lru + 1), false
}

// useAlias records that alias went out with topic (known: it was already
// the topic's). Loop-only.
func (ta *topicAliases) useAlias(alias uint16, known bool, topic []byte) {
	ta.outClock++
	i := int(alias) - 1
	if known {
		ta.outUsed[i] = ta.outClock
		return
	}
	if ta.out == nil {
		ta.out = make(map[string]uint16, ta.outMax)
	}
	if i < len(ta.outTopic) {
		delete(ta.out, ta.outTopic[i]) // reassigned
		ta.outTopic[i] = string(topic)
		ta.outUsed[i] = ta.outClock
	} else {
		ta.outTopic = append(ta.outTopic, string(topic))
		ta.outUsed = append(ta.outUsed, ta.outClock)
	}
	ta.out[ta.outTopic[i]] = alias
}
