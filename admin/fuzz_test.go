package admin

import (
	"net/http/httptest"
	"net/url"
	"testing"
	"unicode/utf8"
)

// The JSON and query decoders take anything without panicking, and what
// they accept is within the documented bounds. Run longer with
// go test ./admin -fuzz FuzzPublishBody -fuzztime 1m.

func FuzzPublishBody(f *testing.F) {
	for _, s := range []string{
		`{"topic":"a/b","payload":"x"}`,
		`{"topic":"a","payload":"AAE=","payload_encoding":"base64","qos":2,"retain":true}`,
		`{"topic":"a","properties":{"payload_format":1,"content_type":"t","response_topic":"r","correlation_data":"AQ==","user_properties":[{"key":"k","value":"v"}],"message_expiry":60}}`,
		`{"topic":"a","qos":-1}`, `{"topic":1}`, `[]`, `null`, `{"topic":"a"}{}`, `{"properties":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		pm, err := parsePublish(body)
		if err != nil {
			return
		}
		if pm.Topic == "" || pm.QoS > 2 || pm.PayloadFormat > 1 {
			t.Fatalf("accepted %q as %+v", body, pm)
		}
	})
}

func FuzzBanBody(f *testing.F) {
	for _, s := range []string{
		`{"kind":"address","value":"192.0.2.1","duration":"1h"}`,
		`{"kind":"client_id","value":"x","duration":"90s","disconnect":false}`,
		`{"kind":"address","value":"::1","duration":"-1s"}`, `{"duration":"1e400h"}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, d, err := parseBan(body)
		if err != nil {
			return
		}
		if d < 1e9 || req.Value == "" || (req.Kind != "address" && req.Kind != "client_id") {
			t.Fatalf("accepted %q as %+v for %v", body, req, d)
		}
	})
}

func FuzzPageQuery(f *testing.F) {
	for _, s := range []string{"page=2&limit=10", "after=YQ&match=x", "limit=100000", "page=-1", "page=99999999999999999999", "page=9223372036854775807&limit=500", "after=%ZZ"} {
		f.Add(s)
	}
	a := New(Options{})
	f.Fuzz(func(t *testing.T, q string) {
		if !utf8.ValidString(q) {
			return
		}
		r := httptest.NewRequest("GET", "/api/v1/clients?"+url.PathEscape(q), nil)
		r.URL.RawQuery = q
		p, err := a.parsePage(r)
		if err != nil {
			return
		}
		if p.limit < 1 || p.limit > a.o.MaxPageSize || p.page < 1 || p.q.Offset+p.q.Limit > 10000 {
			t.Fatalf("accepted %q as %+v", q, p)
		}
	})
}
