// Empty: lets store declare the bodiless functions that go:linkname
// binds to Badger (compact.go).
