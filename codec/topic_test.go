package codec

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidUTF8(t *testing.T) {
	f := func(in string, want bool) {
		t.Helper()
		if got := ValidUTF8([]byte(in)); got != want {
			t.Fatalf("ValidUTF8(%q) = %v; want %v", in, got, want)
		}
	}
	f("", true)
	f("a/b/c", true)
	f("é ü 日本 😀", true)
	f("\uFEFFbom", true)         // [MQTT-1.5.4-3] a BOM is kept, not rejected
	f("\x01\x7f\u0085", true)    // controls are allowed (the spec's SHOULD NOT is for senders)
	f("\uFFFF", true)            // non-characters too
	f("\uFFFD", true)            // an encoded replacement character is valid
	f("a\x00b", false)           // [MQTT-1.5.4-2]
	f("\xed\xa0\x80", false)     // [MQTT-1.5.4-1] U+D800
	f("\xed\xbf\xbf", false)     // U+DFFF
	f("\xc0\x80", false)         // overlong NUL
	f("\xe0\x80\xaf", false)     // overlong '/'
	f("\xf4\x90\x80\x80", false) // above U+10FFFF
	f("\xff", false)
	f("abc\xc3", false) // truncated sequence
	f(strings.Repeat("a", 100)+"\x00", false)
}

// TestValidUTF8MatchesStdlib compares with utf8.Valid on every 1- and 2-byte
// input, plus the NUL rule.
func TestValidUTF8MatchesStdlib(t *testing.T) {
	for i := range 1 << 16 {
		for _, in := range [][]byte{{byte(i)}, {byte(i >> 8), byte(i)}} {
			want := utf8.Valid(in) && bytes.IndexByte(in, 0) < 0
			if got := ValidUTF8(in); got != want {
				t.Fatalf("ValidUTF8(% x) = %v; want %v", in, got, want)
			}
		}
	}
}

func TestValidateTopicName(t *testing.T) {
	f := func(in string, code ReasonCode, spec string) {
		t.Helper()
		err := ValidateTopicName([]byte(in))
		if code == 0 {
			if err != nil {
				t.Fatalf("ValidateTopicName(%q) = %v", in, err)
			}
			return
		}
		checkErr(t, err, code, spec)
	}
	f("a", 0, "")
	f("/", 0, "")
	f("a//b", 0, "")
	f("$SYS/broker", 0, "")
	f(" a b ", 0, "")
	f("é", 0, "")
	f("", TopicNameInvalid, "MQTT-4.7.3-1")
	f("a/+", TopicNameInvalid, "MQTT-3.3.2-2")
	f("#", TopicNameInvalid, "MQTT-3.3.2-2")
	f("a+b", TopicNameInvalid, "MQTT-3.3.2-2")
	f("a\x00", MalformedPacket, "MQTT-1.5.4-2")
	f("\xed\xa0\x80", MalformedPacket, "MQTT-1.5.4-1")
	f(strings.Repeat("a", 65535), 0, "")
	f(strings.Repeat("a", 65536), TopicNameInvalid, "MQTT-4.7.3-3")
}

func TestValidateTopicFilter(t *testing.T) {
	f := func(in string, code ReasonCode, spec string) {
		t.Helper()
		err := ValidateTopicFilter([]byte(in))
		if code == 0 {
			if err != nil {
				t.Fatalf("ValidateTopicFilter(%q) = %v", in, err)
			}
			return
		}
		checkErr(t, err, code, spec)
	}
	// Valid filters (§4.7.1 examples).
	for _, in := range []string{"a", "#", "+", "/", "+/+", "/+", "+/", "a/#", "a/+/b", "a/+/#", "sport/tennis/#",
		"+/tennis/#", "$SYS/#", "$share", "$shared/x", "$share/g/#", "$share/g/+/a", "$share/g/a/b", "$share/g//"} {
		f(in, 0, "")
	}
	f("", TopicFilterInvalid, "MQTT-4.7.3-1")
	f("a#", TopicFilterInvalid, "MQTT-4.7.1-1")
	f("#/", TopicFilterInvalid, "MQTT-4.7.1-1")
	f("a/#/b", TopicFilterInvalid, "MQTT-4.7.1-1")
	f("##", TopicFilterInvalid, "MQTT-4.7.1-1")
	f("sport/tennis#", TopicFilterInvalid, "MQTT-4.7.1-1")
	f("a+", TopicFilterInvalid, "MQTT-4.7.1-2")
	f("+a", TopicFilterInvalid, "MQTT-4.7.1-2")
	f("a/b+/c", TopicFilterInvalid, "MQTT-4.7.1-2")
	f("++", TopicFilterInvalid, "MQTT-4.7.1-2")
	f("$share/", TopicFilterInvalid, "MQTT-4.8.2-1")
	f("$share//a", TopicFilterInvalid, "MQTT-4.8.2-1")
	f("$share/g", TopicFilterInvalid, "MQTT-4.8.2-2")
	f("$share/g/", TopicFilterInvalid, "MQTT-4.8.2-2")
	f("$share/+/a", TopicFilterInvalid, "MQTT-4.8.2-2")
	f("$share/#/a", TopicFilterInvalid, "MQTT-4.8.2-2")
	f("$share/g/a#", TopicFilterInvalid, "MQTT-4.7.1-1")
	f("$share/g/a+", TopicFilterInvalid, "MQTT-4.7.1-2")
	f("a\x00", MalformedPacket, "MQTT-1.5.4-2")
	f(strings.Repeat("a", 65536), TopicFilterInvalid, "MQTT-4.7.3-3")
}

func TestSplitShared(t *testing.T) {
	f := func(in, group, filter string, shared, ok bool) {
		t.Helper()
		g, tf, s, err := SplitShared([]byte(in))
		if (err == nil) != ok || s != shared {
			t.Fatalf("SplitShared(%q) = %q, %q, %v, %v", in, g, tf, s, err)
		}
		if ok && (string(g) != group || string(tf) != filter) {
			t.Fatalf("SplitShared(%q) = %q, %q; want %q, %q", in, g, tf, group, filter)
		}
	}
	f("$share/g/a/b", "g", "a/b", true, true)
	f("$share/group-1/#", "group-1", "#", true, true)
	f("$share/g//", "g", "/", true, true)
	f("a/b", "", "a/b", false, true)
	f("$share", "", "$share", false, true)
	f("$SHARE/g/a", "", "$SHARE/g/a", false, true)
	f("$share/", "", "", true, false)
	f("$share//a", "", "", true, false)
	f("$share/g", "", "", true, false)
	f("$share/g+/a", "", "", true, false)
	f("$share/g/", "", "", true, false)
}

// TestFastPathsLong checks the word-at-a-time paths of ValidUTF8 and
// ValidateTopicName against plain references, with each special byte
// sequence at every position of inputs up to 40 bytes.
func TestFastPathsLong(t *testing.T) {
	refUTF8 := func(b []byte) bool { return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 }
	refTopic := func(b []byte) bool { return refUTF8(b) && !bytes.ContainsAny(b, "+#") }
	specials := [][]byte{{0}, {'+'}, {'#'}, {0x80}, {0xc3, 0xa9}, {0xed, 0xa0, 0x80}, {0xf0, 0x9f, 0x98, 0x80}, {0x7f}, {0xff}}
	for n := 1; n <= 40; n++ {
		base := bytes.Repeat([]byte("abcdefgh/"), 5)[:n]
		for _, s := range specials {
			for pos := 0; pos <= n; pos++ {
				in := append(append(append([]byte{}, base[:pos]...), s...), base[pos:]...)
				if got, want := ValidUTF8(in), refUTF8(in); got != want {
					t.Fatalf("ValidUTF8(% x) = %v; want %v", in, got, want)
				}
				if got, want := ValidateTopicName(in) == nil, refTopic(in); got != want {
					t.Fatalf("ValidateTopicName(% x) = %v; want %v", in, got, want)
				}
			}
		}
	}
}

func TestMatchTopic(t *testing.T) {
	f := func(filter, topic string, want bool) {
		t.Helper()
		if got := MatchTopic(filter, []byte(topic)); got != want {
			t.Fatalf("MatchTopic(%q, %q) = %v; want %v", filter, topic, got, want)
		}
	}
	f("a/b", "a/b", true)
	f("a/b", "a/c", false)
	f("a/+", "a/b", true)
	f("a/+", "a/b/c", false)
	f("a/#", "a", true)
	f("a/#", "a/b/c", true)
	f("#", "a/b", true)
	f("#", "$SYS/x", false) // [MQTT-4.7.2-1]
	f("+/x", "$SYS/x", false)
	f("$SYS/#", "$SYS/x", true)
	f("a/+/c", "a//c", true)
	f("a", "a/b", false)
	if n := testing.AllocsPerRun(100, func() { MatchTopic("a/+/c/#", []byte("a/b/c/d/e")) }); n != 0 {
		t.Fatalf("%v allocations per match", n)
	}
}
