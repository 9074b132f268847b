package router

import (
	"sort"
	"testing"
)

// TestSharedMatchGroups: MatchGroups returns each matching (group,
// filter) once with its name and whole filter, picks nothing until asked
// (a group's turn moves only on Pick), and allocates nothing with room in
// dst.
func TestSharedMatchGroups(t *testing.T) {
	s := NewShared[string]()
	sub := func(g, f, k string) { s.Subscribe([]byte(g), []byte(f), k, SubOptions{}) }
	sub("g1", "a/b", "x")
	sub("g1", "a/b", "y")
	sub("g1", "a/+", "x")
	sub("g2", "#", "z")
	sub("g3", "c", "w")
	sub("g4", "a/b/c", "w")
	got := s.MatchGroups([]byte("a/b"), nil)
	var keys []string
	for _, m := range got {
		keys = append(keys, m.Group()+" "+m.Filter())
	}
	sort.Strings(keys)
	if want := "[g1 a/+ g1 a/b g2 #]"; fmtSlice(keys) != want {
		t.Fatalf("MatchGroups(a/b) = %v, want %s", keys, want)
	}
	for _, m := range got {
		if m.Group() == "g1" && m.Filter() == "a/b" {
			e1, _ := m.Pick(nil)
			e2, _ := m.Pick(nil)
			if e1.Key == e2.Key {
				t.Fatalf("two picks gave %s twice: not in turn", e1.Key)
			}
		}
	}
	if got := s.MatchGroups([]byte("$x/b"), nil); len(got) != 0 {
		t.Fatalf("# matched a $ topic: %v", got) // [MQTT-4.7.2-1]
	}
	s.Unsubscribe([]byte("g1"), []byte("a/b"), "x")
	for _, m := range s.MatchGroups([]byte("a/b"), nil) {
		if m.Group() == "g1" && m.Filter() == "a/b" {
			if e, _ := m.Pick(nil); e.Key != "y" {
				t.Fatalf("left member %s, want y", e.Key)
			}
		}
	}
	dst := make([]SharedMatch[string], 0, 8)
	if a := testing.AllocsPerRun(100, func() { dst = s.MatchGroups([]byte("a/b"), dst[:0]) }); a != 0 {
		t.Fatalf("MatchGroups allocates %.1f times", a)
	}
}

func fmtSlice(s []string) string {
	out := "["
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out + "]"
}
