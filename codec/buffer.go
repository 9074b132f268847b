package codec

import "github.com/valyala/bytebufferpool"

// GetBuffer returns an empty scratch buffer from a shared pool, for callers
// that encode into a temporary buffer (for example a header written next to a
// shared payload). Safe for concurrent use.
//
// Return it with PutBuffer once nothing refers to its bytes any more. It is
// meant for scratch space that is returned on the same goroutine; it is not
// for refcounted payloads shared between connections.
func GetBuffer() *bytebufferpool.ByteBuffer { return bytebufferpool.Get() }

// PutBuffer returns b to the pool. b must not be used afterwards. Safe for
// concurrent use.
func PutBuffer(b *bytebufferpool.ByteBuffer) { bytebufferpool.Put(b) }
