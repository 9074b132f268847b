package main

import "testing"

func TestPrefixListFlag(t *testing.T) {
	f := func(in []string, want string, wantErr bool) {
		t.Helper()
		var l prefixList
		var err error
		for _, v := range in {
			if err = l.Set(v); err != nil {
				break
			}
		}
		if (err != nil) != wantErr || (!wantErr && l.String() != want) {
			t.Fatalf("%q: got %q, %v; want %q (error %v)", in, l.String(), err, want, wantErr)
		}
	}
	f([]string{"10.0.0.0/8"}, "10.0.0.0/8", false)
	f([]string{"10.1.2.3/8, 192.0.2.1", "::ffff:10.0.0.0/104", "2001:db8::/32"}, "10.0.0.0/8,192.0.2.1/32,10.0.0.0/8,2001:db8::/32", false)
	f([]string{"10.0.0.0/33"}, "", true)
	f([]string{"proxy.example"}, "", true)
}
