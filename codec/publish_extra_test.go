package codec

import (
	"bytes"
	"testing"
)

// A PUBLISH assembled from a header with per-delivery properties, shared
// property bytes encoded once, and the payload is the same packet as one
// encoded whole.
func TestAppendPublishHeaderExtra(t *testing.T) {
	shared := Properties{User: []UserProperty{{Key: []byte("k"), Value: []byte("v")}, {Key: []byte("k2"), Value: []byte("v2")}}}
	shared.Set(PropContentType)
	shared.ContentType = []byte("text/plain")
	sharedBytes := shared.AppendContent(nil)
	if len(sharedBytes) != shared.Len() {
		t.Fatalf("AppendContent wrote %d bytes, Len says %d", len(sharedBytes), shared.Len())
	}
	p := Publish{Topic: []byte("a/b"), QoS: 1, PacketID: 7, Payload: []byte("payload")}
	p.Props.Set(PropMessageExpiry)
	p.Props.MessageExpiry = 30
	p.Props.SubscriptionIDs = []uint32{3, 300}

	parts := AppendPublishHeaderExtra(nil, &p, V5, len(sharedBytes))
	parts = append(append(parts, sharedBytes...), p.Payload...)
	if got, want := len(parts), p.LenExtra(V5, len(sharedBytes)); got != want {
		t.Fatalf("assembled %d bytes, LenExtra says %d", got, want)
	}
	whole := p
	whole.Props.User = shared.User
	whole.Props.Set(PropContentType)
	whole.Props.ContentType = shared.ContentType
	h, err := Frame(parts, 0)
	if err != nil {
		t.Fatal(err)
	}
	var a, b Publish
	if err := a.Decode(h, h.Body(parts), V5); err != nil {
		t.Fatal(err)
	}
	enc := whole.Append(nil, V5)
	hw, _ := Frame(enc, 0)
	if err := b.Decode(hw, hw.Body(enc), V5); err != nil {
		t.Fatal(err)
	}
	if a.Props.MessageExpiry != 30 || len(a.Props.SubscriptionIDs) != 2 || len(a.Props.User) != 2 || !bytes.Equal(a.Props.ContentType, []byte("text/plain")) || !bytes.Equal(a.Payload, b.Payload) || a.Props.Len() != b.Props.Len() {
		t.Fatalf("assembled %+v, whole %+v", a, b)
	}
}
