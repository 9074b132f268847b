package broker

// ring is a growable FIFO with O(1) push/pop at both ends.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) at(i int) T { return r.buf[(r.head+i)%len(r.buf)] }

func (r *ring[T]) pushBack(v T) {
	if r.n == len(r.buf) {
		nb := make([]T, max(4, 2*len(r.buf)))
		for i := 0; i < r.n; i++ {
			nb[i] = r.at(i)
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

func (r *ring[T]) popFront() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	if r.n == 0 {
		r.head = 0
		if len(r.buf) > 64 {
			r.buf = nil // give back a burst's memory once drained
		}
	}
	return v
}

// remove deletes element i, keeping order.
func (r *ring[T]) remove(i int) T {
	v := r.at(i)
	for j := i; j > 0; j-- {
		r.buf[(r.head+j)%len(r.buf)] = r.buf[(r.head+j-1)%len(r.buf)]
	}
	r.popFront()
	return v
}
