package rewrite

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/mcutie/mcutie/codec"
	"github.com/mcutie/mcutie/hooks"
	"github.com/mcutie/mcutie/hooks/internal/conf"
)

// TopicRule rewrites PUBLISH topics and/or SUBSCRIBE filters, as EMQX's
// rewrite module does: the rules are tried in order, and the first whose
// Filter matches the topic (or the filter subscribed) decides. If its
// regular expression matches, the topic becomes Dest, with $1…$9 (or
// ${name}) replaced by the groups and %c / %u by the client id and user
// name; if it does not match, the topic stays as it is and no later rule
// is tried.
type TopicRule struct {
	// Action is what the rule applies to: "publish", "subscribe" or "all"
	// (default).
	Action string `yaml:"action"`
	// Filter selects the topics (MQTT wildcards); required.
	Filter string `yaml:"filter"`
	// Regex is the RE2 regular expression matched against the whole
	// topic (re: in YAML); required.
	Regex string `yaml:"re"`
	// Dest is the new topic; required.
	Dest string `yaml:"dest"`

	re        *regexp.Regexp
	pub, sub  bool
	parts     []string // Dest split around %c and %u
	subst     []byte   // what follows each part but the last: 'c' or 'u'
	usesIdent bool
}

// compile checks rule i and prepares it.
func (r *TopicRule) compile(i int) error {
	at := func(field string) string { return fmt.Sprintf("topics[%d].%s", i, field) }
	switch r.Action {
	case "", "all":
		r.pub, r.sub = true, true
	case "publish":
		r.pub = true
	case "subscribe":
		r.sub = true
	default:
		return conf.Errorf(at("action"), "%q: want publish, subscribe or all", r.Action)
	}
	if r.Filter == "" || codec.ValidateTopicFilter([]byte(r.Filter)) != nil {
		return conf.Errorf(at("filter"), "%q is not a valid topic filter", r.Filter)
	}
	if r.Regex == "" {
		return conf.Errorf(at("re"), "give a regular expression")
	}
	re, err := regexp.Compile(r.Regex)
	if err != nil {
		return conf.Errorf(at("re"), "%v", err)
	}
	r.re = re
	if r.Dest == "" {
		return conf.Errorf(at("dest"), "give the new topic")
	}
	rest := r.Dest
	for {
		j := strings.Index(rest, "%")
		if j < 0 || j == len(rest)-1 {
			r.parts = append(r.parts, rest)
			break
		}
		switch rest[j+1] {
		case 'c', 'u':
			r.parts = append(r.parts, rest[:j])
			r.subst = append(r.subst, rest[j+1])
			r.usesIdent = true
			rest = rest[j+2:]
			continue
		}
		return conf.Errorf(at("dest"), "%q: only %%c and %%u are substituted", r.Dest)
	}
	// A PUBLISH topic holds no wildcard: a template that writes one is a
	// mistake (a subscribe-only rule may write a filter). What the groups
	// bring is checked by the broker, which drops a PUBLISH whose new
	// topic is not a valid topic name.
	if r.pub && strings.ContainsAny(strings.Join(r.parts, ""), "+#") {
		return conf.Errorf(at("dest"), "%q: a topic name holds no wildcard (use action: subscribe for filters)", r.Dest)
	}
	return nil
}

// apply returns the rewritten topic, or nil when r leaves it.
func (r *TopicRule) apply(topic []byte, c *hooks.Client) []byte {
	m := r.re.FindSubmatchIndex(topic)
	if m == nil {
		return nil
	}
	var out []byte
	for k, part := range r.parts {
		out = r.re.Expand(out, []byte(part), topic, m)
		if k < len(r.subst) {
			v := c.ID
			if r.subst[k] == 'u' {
				if !c.HasUsername {
					return nil // no user name to put there: left as it is
				}
				v = c.Username
			}
			if v == "" || strings.ContainsAny(v, "+#/") {
				return nil // would change the topic's levels (as ACL patterns refuse)
			}
			out = append(out, v...)
		}
	}
	return out
}

// rewriteTopic runs the rules of one action on topic: the new topic, or
// nil. Safe for concurrent use.
func (p *Plugin) rewriteTopic(topic []byte, c *hooks.Client, publish bool) []byte {
	for i := range p.cfg.Topics {
		r := &p.cfg.Topics[i]
		if publish && !r.pub || !publish && !r.sub {
			continue
		}
		if codec.MatchTopic(r.Filter, topic) {
			return r.apply(topic, c) // the first matching rule decides
		}
	}
	return nil
}

// OnPublishTopic rewrites a client's PUBLISH topic before the ACL check.
func (p *Plugin) OnPublishTopic(c *hooks.Client, topic []byte) []byte {
	return p.rewriteTopic(topic, c, true)
}

// OnSubscribe rewrites a SUBSCRIBE filter before the ACL check; a
// $share/{group}/ prefix stays and the filter after it is rewritten.
func (p *Plugin) OnSubscribe(c *hooks.Client, s *hooks.Subscription) error {
	group, filter, shared, err := codec.SplitShared(s.Filter)
	if err != nil {
		return nil // the broker refuses it as it is
	}
	out := p.rewriteTopic(filter, c, false)
	if out == nil {
		return nil
	}
	if shared {
		out = append(append(append([]byte("$share/"), group...), '/'), out...)
	}
	s.Filter = out
	return nil
}
