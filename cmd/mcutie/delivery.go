package main

import (
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mcutie/mcutie/broker"
)

// deliveryConfig holds the flags of the delivery features (docs/delivery.md)
// and of the forwarding headers the WebSocket listeners honour.
type deliveryConfig struct {
	wsTrustedProxies prefixList
}

// deliveryFlags registers the delivery features' flags; those that map to
// a broker option set o directly.
func deliveryFlags(fs *flag.FlagSet, c *deliveryConfig, o *broker.Options) {
	fs.BoolVar(&o.DelayedPublish, "delayed-publish", false, "delayed messages: a PUBLISH to $delayed/{seconds}/{topic} is published to {topic} after the delay, kept in the store meanwhile (published at once after a restart if its time passed); the ACL applies to {topic} (docs/delivery.md)")
	fs.IntVar(&o.MaxDelayedMessages, "max-delayed-messages", 100000, "delayed messages waiting at most; beyond it a $delayed PUBLISH is refused (v5 PUBACK 0x97; 3.x acknowledged, dropped, counted and logged)")
	fs.DurationVar(&o.MaxDelay, "max-delay", 24*time.Hour, "longest delay of a $delayed PUBLISH; a longer one is refused (v5 PUBACK 0x83; 3.x acknowledged and dropped)")
	fs.BoolVar(&o.P2P, "p2p", false, "point-to-point messages: a PUBLISH to $p2p/{clientid}/{topic} goes to that client's session only, as a PUBLISH to {topic} (queued for an offline persistent session); the publisher needs write access to the $p2p topic, the recipient read access to {topic} (docs/delivery.md)")
	fs.Var(&c.wsTrustedProxies, "ws-trusted-proxies", "reverse proxies (IPs or CIDRs, comma-separated, repeatable) whose X-Forwarded-For or Forwarded header on a ws:// or wss:// upgrade names the client for logs, hooks, bans and per-IP limits (right-most untrusted hop); any other sender's header is ignored and counted (empty: all ignored)")
}

// prefixList is a repeatable flag of comma-separated IP prefixes; a bare
// address is a /32 or /128.
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l *prefixList) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if a, err := netip.ParseAddr(f); err == nil {
			*l = append(*l, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return fmt.Errorf("%q is neither an IP address nor a CIDR prefix", f)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		*l = append(*l, p.Masked())
	}
	return nil
}
