package auth

import (
	"sync"
	"sync/atomic"

	"github.com/mcutie/mcutie/broker"
	"github.com/mcutie/mcutie/codec"
)

// PasswordAuthenticator checks CONNECT user names and passwords against a
// Passwords set. The PBKDF2 derivation runs on a fixed pool of worker
// goroutines fed by a bounded queue, never on an event loop; when the
// queue is full the CONNECT is refused at once with 0x89 Server busy
// (3.x 0x03), so a connection storm costs bounded memory and CPU.
//
// Safe for concurrent use. Swap replaces the users (a reload) without
// disturbing checks in progress.
type PasswordAuthenticator struct {
	pw     atomic.Pointer[Passwords]
	jobs   chan pwJob
	wg     sync.WaitGroup
	mu     sync.RWMutex // closed and the send on jobs
	closed bool

	// QueueFull counts CONNECTs refused because the queue was full.
	QueueFull atomic.Uint64
}

type pwJob struct {
	req  *broker.AuthRequest
	done func(broker.AuthResult)
}

// NewPasswordAuthenticator starts workers goroutines (default 2) behind a
// queue of queue pending checks (default 1024). Close stops them.
func NewPasswordAuthenticator(p *Passwords, workers, queue int) *PasswordAuthenticator {
	if workers <= 0 {
		workers = 2
	}
	if queue <= 0 {
		queue = 1024
	}
	a := &PasswordAuthenticator{jobs: make(chan pwJob, queue)}
	a.Swap(p)
	a.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go a.work()
	}
	return a
}

// Swap makes p the current users. p is sealed here.
func (a *PasswordAuthenticator) Swap(p *Passwords) {
	if p == nil {
		p = NewPasswords()
	}
	a.pw.Store(p.Seal())
}

// Users is the current number of users.
func (a *PasswordAuthenticator) Users() int { return a.pw.Load().Len() }

// Authenticate queues the check; see broker.Authenticator.
func (a *PasswordAuthenticator) Authenticate(req *broker.AuthRequest, done func(broker.AuthResult)) {
	if req.Method != "" {
		done(broker.AuthResult{Code: codec.BadAuthenticationMethod, Reason: "authentication method not supported"})
		return
	}
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		done(broker.AuthResult{Code: codec.ServerUnavailable, Reason: "shutting down"})
		return
	}
	select {
	case a.jobs <- pwJob{req: req, done: done}:
		a.mu.RUnlock()
	default:
		a.mu.RUnlock()
		a.QueueFull.Add(1)
		done(broker.AuthResult{Code: codec.ServerBusy, Reason: "authentication queue full"})
	}
}

func (a *PasswordAuthenticator) work() {
	defer a.wg.Done()
	for j := range a.jobs {
		j.done(a.check(j.req))
	}
}

func (a *PasswordAuthenticator) check(req *broker.AuthRequest) broker.AuthResult {
	// A user name without a password runs the same derivation (with an
	// empty password), so it is not answered faster either.
	if a.pw.Load().Check(req.Username, req.Password) && req.HasPassword {
		return broker.AuthResult{Code: codec.Success}
	}
	return broker.AuthResult{Code: codec.BadUserNameOrPassword, Reason: "bad user name or password"}
}

// Close stops the workers after the queued checks; later CONNECTs are
// refused with 0x88 Server unavailable.
func (a *PasswordAuthenticator) Close() {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.jobs)
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// ACLAuthorizer serves an ACL to the broker. Safe for concurrent use; Swap
// replaces the rules atomically (a reload) and bumps the generation, so
// the broker's per-session caches drop verdicts made under the old rules.
// Connections are not touched.
type ACLAuthorizer struct {
	acl atomic.Pointer[ACL]
	gen atomic.Uint64
}

// NewACLAuthorizer returns an authorizer serving a.
func NewACLAuthorizer(a *ACL) *ACLAuthorizer {
	z := &ACLAuthorizer{}
	z.Swap(a)
	return z
}

// Swap makes a the current rules.
func (z *ACLAuthorizer) Swap(a *ACL) {
	if a == nil {
		a = &ACL{users: map[string][]aclRule{}}
	}
	z.acl.Store(a)
	z.gen.Add(1)
}

// Allow implements broker.Authorizer.
func (z *ACLAuthorizer) Allow(id *broker.Identity, topic []byte, acc broker.Access) bool {
	return z.acl.Load().Allow(id, topic, acc)
}

// Generation implements broker.Authorizer.
func (z *ACLAuthorizer) Generation() uint64 { return z.gen.Load() }

var (
	_ broker.Authenticator = (*PasswordAuthenticator)(nil)
	_ broker.Authorizer    = (*ACLAuthorizer)(nil)
)
