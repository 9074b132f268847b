package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync/atomic"

	"github.com/mcutie/mcutie/codec"
)

// Auto-subscribe (Options.AutoSubscribe, docs/delivery.md): rules that
// subscribe a client when it connects, chosen by its client id and user
// name, with %c and %u in the filter. They are made as the client's own
// SUBSCRIBE would be, on its loop right after the CONNACK, with every
// check a SUBSCRIBE gets (ACL, limits, subscribe hooks), and are ordinary
// subscriptions after: stored with a persistent session, listed, removed
// by UNSUBSCRIBE. No SUBACK is sent; retained messages are sent per the
// rule's Retain Handling, as for a SUBSCRIBE.

// AutoSubscribeRule is one rule. ClientID and Username select the clients
// (nil matches every client; a non-nil Username never matches a client
// without a user name); Filter may hold %c (the client id) and %u (the
// user name).
type AutoSubscribeRule struct {
	ClientID, Username *regexp.Regexp
	Filter             string
	QoS                byte
	// NoLocal, RetainAsPublished and RetainHandling are the MQTT 5
	// subscription options; they apply to 3.x clients too.
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	// Source names the rule in logs (e.g. "autosub.yaml:12").
	Source string
}

// Check validates the rule as broker.New would use it: a filter that is a
// valid topic filter once %c and %u are substituted, QoS and Retain
// Handling in range, no No Local on a shared subscription
// [MQTT-3.8.3-4].
func (r *AutoSubscribeRule) Check() error {
	if r.QoS > 2 {
		return fmt.Errorf("qos %d: want 0, 1 or 2", r.QoS)
	}
	if r.RetainHandling > 2 {
		return fmt.Errorf("retain_handling %d: want 0, 1 or 2", r.RetainHandling)
	}
	probe := strings.NewReplacer("%c", "c", "%u", "u").Replace(r.Filter)
	if r.Filter == "" || codec.ValidateTopicFilter([]byte(probe)) != nil {
		return fmt.Errorf("filter %q is not a valid topic filter", r.Filter)
	}
	if strings.Contains(strings.NewReplacer("%c", "", "%u", "").Replace(r.Filter), "%") {
		return fmt.Errorf("filter %q: only %%c and %%u are substituted", r.Filter)
	}
	if _, _, shared, _ := codec.SplitShared([]byte(probe)); shared && r.NoLocal {
		return errors.New("no_local on a shared subscription is a protocol error (MQTT-3.8.3-4)")
	}
	return nil
}

// autoSubResult labels mcutie_auto_subscriptions_total.
type autoSubResult uint8

const (
	autoSubAdded   autoSubResult = iota // subscribed
	autoSubRefused                      // refused by the ACL, a limit or a hook
	autoSubSkipped                      // %c or %u would not make a safe filter level
	numAutoSubResults
)

var autoSubResultLabels = [numAutoSubResults]string{"added", "refused", "skipped"}

// autoSubCounters counts auto-subscriptions; safe for concurrent use.
type autoSubCounters [numAutoSubResults]atomic.Uint64

// autoSubscribe applies the rules that select the client that has just
// connected. Loop-only.
func (c *Client) autoSubscribe(p *codec.Connect) {
	b := c.l.b
	id, user := c.s.id, string(p.Username)
	var sub codec.Subscribe
	var src []*AutoSubscribeRule
	for i := range b.opts.AutoSubscribe {
		r := &b.opts.AutoSubscribe[i]
		if r.ClientID != nil && !r.ClientID.MatchString(id) || r.Username != nil && (!p.UsernameFlag || !r.Username.MatchString(user)) {
			continue
		}
		filter, ok := expandAutoSub(r.Filter, id, user, p.UsernameFlag)
		if !ok {
			// A value that is empty or holds '+', '#' or '/' would
			// change the filter's meaning (as for ACL patterns).
			b.autoSub[autoSubSkipped].Add(1)
			b.opts.Logger.Info("auto-subscribe rule skipped: the client id or user name cannot fill the filter", slog.String("client", id),
				slog.String("rule", r.Source), slog.String("filter", r.Filter))
			continue
		}
		sub.Subs = append(sub.Subs, codec.Subscription{Filter: []byte(filter), QoS: r.QoS, NoLocal: r.NoLocal, RetainAsPublished: r.RetainAsPublished, RetainHandling: r.RetainHandling})
		src = append(src, r)
	}
	if len(sub.Subs) == 0 {
		return
	}
	if err := c.subscribe(&sub, true); err != nil {
		b.autoSub[autoSubRefused].Add(uint64(len(sub.Subs)))
		b.opts.Logger.Warn("auto-subscribe failed", slog.String("client", id), slog.String("err", err.Error()))
		return
	}
	for i, code := range c.l.pkt.suback.Codes {
		if !code.IsError() {
			b.autoSub[autoSubAdded].Add(1)
			continue
		}
		b.autoSub[autoSubRefused].Add(1)
		b.opts.Logger.Info("auto-subscribe refused", slog.String("client", id), slog.String("rule", src[i].Source),
			slog.String("filter", string(sub.Subs[i].Filter)), slog.String("code", fmt.Sprintf("0x%02x", byte(code))))
	}
}

// expandAutoSub substitutes %c and %u in one pass; false when a value
// used is empty or holds a wildcard or a level separator.
func expandAutoSub(f, id, user string, hasUser bool) (string, bool) {
	safe := func(v string) bool { return v != "" && !strings.ContainsAny(v, "+#/") }
	var sb strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] == '%' && i+1 < len(f) {
			switch f[i+1] {
			case 'c':
				if !safe(id) {
					return "", false
				}
				sb.WriteString(id)
				i++
				continue
			case 'u':
				if !hasUser || !safe(user) {
					return "", false
				}
				sb.WriteString(user)
				i++
				continue
			}
		}
		sb.WriteByte(f[i])
	}
	return sb.String(), true
}
