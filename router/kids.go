package router

import (
	"maps"
	"slices"
	"strings"
)

// A node keeps its children in a slice sorted by level while it has at most
// kidsListMax of them, and in a map above that. Most nodes of a topic tree
// have a handful of children, where a slice is smaller than any map and a
// binary search over contiguous labels is as fast; the few wide nodes
// ("dev/<id>" with a million ids) get O(1) lookups and inserts. A map that
// shrinks to kidsListMin goes back to a slice (the gap avoids flapping).
const (
	kidsListMax = 16
	kidsListMin = 8
)

// kid is one child with its level. The level lives here, in the parent, not
// in the child: lookups touch only the parent's array, and a node carries no
// label field. Labels are substrings of the filter or topic that created the
// node, so the bytes of a level are not copied once per node. The price: a
// label keeps that whole copy alive (one filter or topic suffix per live
// node at most, the same order of memory as the entries themselves).
type kid[T any] struct {
	label string
	n     *T
}

// kids is the set of literal (non-wildcard) children of a node. The zero
// value is empty and ready to use.
type kids[T any] struct {
	list []kid[T]      // sorted by label; nil while m is in use
	m    map[string]*T // non-nil above kidsListMax children
}

func (k *kids[T]) len() int {
	if k == nil {
		return 0
	}
	if k.m != nil {
		return len(k.m)
	}
	return len(k.list)
}

// search returns the position of lvl in the sorted list, or where it would
// be inserted. The string(lvl) conversions in comparisons do not allocate.
func (k *kids[T]) search(lvl []byte) (int, bool) {
	lo, hi := 0, len(k.list)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if k.list[h].label < string(lvl) {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo, lo < len(k.list) && k.list[lo].label == string(lvl)
}

// get returns the child at level lvl, or nil. It does not allocate. A nil
// *kids is empty.
func (k *kids[T]) get(lvl []byte) *T {
	if k == nil {
		return nil
	}
	if k.m != nil {
		return k.m[string(lvl)]
	}
	if i, ok := k.search(lvl); ok {
		return k.list[i].n
	}
	return nil
}

// add inserts child n at level label, which must not be present yet.
func (k *kids[T]) add(label string, n *T) {
	if k.m != nil {
		k.m[label] = n
		return
	}
	if len(k.list) >= kidsListMax {
		m := make(map[string]*T, len(k.list)+1)
		for _, c := range k.list {
			m[c.label] = c.n
		}
		m[label] = n
		k.m, k.list = m, nil
		return
	}
	i, _ := slices.BinarySearchFunc(k.list, label, func(c kid[T], l string) int { return strings.Compare(c.label, l) })
	k.list = slices.Insert(k.list, i, kid[T]{label: label, n: n})
}

// set replaces the child at an existing level lvl.
func (k *kids[T]) set(lvl []byte, n *T) {
	if k.m != nil {
		k.m[string(lvl)] = n
		return
	}
	if i, ok := k.search(lvl); ok {
		k.list[i].n = n
	}
}

// del removes the child at level lvl, if any.
func (k *kids[T]) del(lvl []byte) {
	if k.m != nil {
		delete(k.m, string(lvl))
		if len(k.m) <= kidsListMin {
			list := make([]kid[T], 0, len(k.m))
			for l, n := range k.m {
				list = append(list, kid[T]{label: l, n: n})
			}
			slices.SortFunc(list, func(a, b kid[T]) int { return strings.Compare(a.label, b.label) })
			k.list, k.m = list, nil
		}
		return
	}
	if i, ok := k.search(lvl); ok {
		k.list = slices.Delete(k.list, i, i+1) // zeroes the freed tail slot
		if len(k.list) == 0 {
			k.list = nil
		}
	}
}

// clone returns a copy that shares no mutable storage with k (used by the
// copy-on-write Shared index).
func (k *kids[T]) clone() kids[T] {
	if k.m != nil {
		return kids[T]{m: maps.Clone(k.m)}
	}
	return kids[T]{list: slices.Clone(k.list)}
}
