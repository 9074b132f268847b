package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Network namespaces for the cluster partition tests
// (cluster_partition_test.go). Names carry a net prefix.
//
// A netLab is n nodes, each a network namespace of its own with its
// loopback up and two links:
//
//   - a client link: a veth pair between the root namespace, where the
//     test process and its MQTT clients run (10.B.<i+1>.1/24, device
//     <prefix>c<i>), and the node (10.B.<i+1>.2/24, device "cli"). MQTT
//     and HTTP from the test go over it; it is never cut, so a test keeps
//     talking to both sides of a split.
//   - a cluster link: a veth pair between the node (10.B.0.<i+1>/24,
//     device "clu") and a bridge in a switch namespace of the lab's own
//     (port p<i>), which joins every node's cluster link. cut(i) sets the
//     node's port on the switch down: a cable pulled at the switch. The
//     node's own device stays up and nothing is reset, so TCP between the
//     nodes sees only silence, as across a real partition; heal(i) sets
//     the port up again (the bridge runs no STP: the port forwards at
//     once).
//
// The bridge lives in its own namespace so that the root namespace's
// firewall (bridged IPv4 passes iptables where br_netfilter is on) sees
// none of it. B, the second octet, is chosen so that 10.B.0.0/16
// overlaps no route of the machine.
//
// The kernel of our test machines has no sch_netem, so links are cut
// with ip link set down/up; a lossy or delayed link would be a
// `tc qdisc add dev p<i> root netem ...` on the switch port where the
// kernel has it.
//
// Names: every namespace and root-namespace device starts with
// "mcpt<pid><seq>", where pid is the test process's and seq a letter per
// lab. The lab removes what it made in t.Cleanup, after the processes in
// it were killed (cleanups run last first, and the lab registers its own
// before starting any); newNetLab first sweeps what a test process that
// no longer runs left behind (killed before its cleanups ran).
//
// Skips: the test is skipped, with the reason, when not run as root or
// when ip netns cannot make a namespace (no CAP_SYS_ADMIN, e.g. in an
// unprivileged container).
type netLab struct {
	t      testing.TB
	prefix string // mcpt<pid><seq>
	base   int    // B of 10.B.0.0/16
	sw     string // the switch namespace
	nodes  []*netNode
}

// netNode is one node's namespace and addresses.
type netNode struct {
	NS        string // namespace name, for ip netns exec
	ClientIP  string // on the client link, reachable from the test process
	ClusterIP string // on the switch
	port      string // its port on the switch (in the switch namespace)
	rootDev   string // the root namespace's end of the client link
}

const netPrefix = "mcpt"

var netLabs struct {
	mu   sync.Mutex
	seq  int
	live map[string]bool // prefixes of this process's labs not yet removed
}

// newNetLab makes a lab of n nodes, or skips the test when namespaces
// cannot be made here.
func newNetLab(t testing.TB, n int) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("partition tests make network namespaces (ip netns), which needs root; running as uid %d", os.Geteuid())
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partition tests need ip (iproute2) for network namespaces: not installed")
	}
	if n < 1 || n > 9 {
		t.Fatalf("netLab: %d nodes (1 to 9)", n)
	}
	netSweep(t)
	netLabs.mu.Lock()
	if netLabs.live == nil {
		netLabs.live = map[string]bool{}
	}
	lab := &netLab{t: t, prefix: fmt.Sprintf("%s%d%c", netPrefix, os.Getpid(), 'a'+netLabs.seq%26)}
	netLabs.seq++
	netLabs.live[lab.prefix] = true
	netLabs.mu.Unlock()
	lab.sw = lab.prefix + "sw"
	t.Cleanup(lab.remove)

	if out, err := exec.Command("ip", "netns", "add", lab.sw).CombinedOutput(); err != nil {
		t.Skipf("ip netns add failed (%v: %s): network namespaces are not available here", err, bytes.TrimSpace(out))
	}
	lab.base = netFreeBase(t)
	lab.ip("-n", lab.sw, "link", "set", "lo", "up")
	lab.ipOrSkip("-n", lab.sw, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	lab.ip("-n", lab.sw, "link", "set", "br0", "up")
	for i := range n {
		nd := &netNode{
			NS:        fmt.Sprintf("%sn%d", lab.prefix, i),
			ClientIP:  fmt.Sprintf("10.%d.%d.2", lab.base, i+1),
			ClusterIP: fmt.Sprintf("10.%d.0.%d", lab.base, i+1),
			port:      fmt.Sprintf("p%d", i),
			rootDev:   fmt.Sprintf("%sc%d", lab.prefix, i),
		}
		lab.nodes = append(lab.nodes, nd)
		lab.ip("netns", "add", nd.NS)
		lab.ip("-n", nd.NS, "link", "set", "lo", "up")
		// Client link: root <-> node.
		lab.ipOrSkip("link", "add", nd.rootDev, "type", "veth", "peer", "name", "cli", "netns", nd.NS)
		lab.ip("addr", "add", fmt.Sprintf("10.%d.%d.1/24", lab.base, i+1), "dev", nd.rootDev)
		lab.ip("link", "set", nd.rootDev, "up")
		lab.ip("-n", nd.NS, "addr", "add", nd.ClientIP+"/24", "dev", "cli")
		lab.ip("-n", nd.NS, "link", "set", "cli", "up")
		// Cluster link: switch port <-> node.
		lab.ip("-n", lab.sw, "link", "add", nd.port, "type", "veth", "peer", "name", "clu", "netns", nd.NS)
		lab.ip("-n", lab.sw, "link", "set", nd.port, "master", "br0")
		lab.ip("-n", lab.sw, "link", "set", nd.port, "up")
		lab.ip("-n", nd.NS, "addr", "add", nd.ClusterIP+"/24", "dev", "clu")
		lab.ip("-n", nd.NS, "link", "set", "clu", "up")
	}
	return lab
}

// ip runs ip with args and fails the test if it fails.
func (lab *netLab) ip(args ...string) {
	lab.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		lab.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// ipOrSkip is ip for the commands that make a bridge or a veth pair: a
// kernel without them (or a sandbox that forbids them) skips the test.
func (lab *netLab) ipOrSkip(args ...string) {
	lab.t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	switch {
	case err == nil:
	case bytes.Contains(out, []byte("Unknown device type")), bytes.Contains(out, []byte("not supported")),
		bytes.Contains(out, []byte("Operation not permitted")):
		lab.t.Skipf("ip %s: %s: this machine cannot make the links the partition tests need", strings.Join(args, " "), bytes.TrimSpace(out))
	default:
		lab.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
}

// command is name with args run in node i's namespace (ip netns exec
// execs it in place: the process's pid is the command's).
func (lab *netLab) command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", lab.nodes[i].NS, name}, args...)...)
}

// cut disconnects node i's cluster link at the switch (silently: see
// netLab); heal reconnects it.
func (lab *netLab) cut(i int)  { lab.ip("-n", lab.sw, "link", "set", lab.nodes[i].port, "down") }
func (lab *netLab) heal(i int) { lab.ip("-n", lab.sw, "link", "set", lab.nodes[i].port, "up") }

// remove deletes the lab's namespaces and root-namespace devices. Call it
// after every process in the lab ended: a namespace with a process in it
// outlives ip netns del.
func (lab *netLab) remove() {
	var errs []string
	for _, nd := range lab.nodes {
		if err := netDel("netns", nd.NS); err != nil {
			errs = append(errs, err.Error())
		}
		// The root end goes with its peer; this is for a node whose
		// namespace could not be made.
		_ = netDel("link", nd.rootDev)
	}
	if err := netDel("netns", lab.sw); err != nil {
		errs = append(errs, err.Error())
	}
	netLabs.mu.Lock()
	delete(netLabs.live, lab.prefix)
	netLabs.mu.Unlock()
	if len(errs) > 0 {
		lab.t.Errorf("netLab cleanup: %s", strings.Join(errs, "; "))
	}
}

// netDel deletes a namespace or a root-namespace link; one that is not
// there is no error.
func netDel(kind, name string) error {
	var cmd *exec.Cmd
	if kind == "netns" {
		cmd = exec.Command("ip", "netns", "del", name)
	} else {
		cmd = exec.Command("ip", "link", "del", name)
	}
	out, err := cmd.CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("No such file")) && !bytes.Contains(out, []byte("Cannot find device")) {
		return fmt.Errorf("ip %s del %s: %v: %s", kind, name, err, bytes.TrimSpace(out))
	}
	return nil
}

// netSweep removes namespaces and root-namespace links named after a
// test process that no longer runs, or after a lab of this process that
// is not live (a pid reused).
func netSweep(t testing.TB) {
	t.Helper()
	stale := func(name string) bool {
		rest, ok := strings.CutPrefix(name, netPrefix)
		if !ok {
			return false
		}
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 || j == len(rest) {
			return false
		}
		pid, err := strconv.Atoi(rest[:j])
		if err != nil {
			return false
		}
		if pid == os.Getpid() {
			netLabs.mu.Lock()
			defer netLabs.mu.Unlock()
			return !netLabs.live[name[:len(netPrefix)+j+1]]
		}
		err = syscall.Kill(pid, 0)
		return err != nil && err != syscall.EPERM
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && stale(f[0]) {
				if err := netDel("netns", f[0]); err != nil {
					t.Logf("stale namespace: %v", err)
				}
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if stale(name) {
				if err := netDel("link", name); err != nil {
					t.Logf("stale link: %v", err)
				}
			}
		}
	}
}

// netFreeBase picks B so that 10.B.0.0/16 overlaps no IPv4 route of the
// root namespace (another lab's included).
func netFreeBase(t testing.TB) int {
	t.Helper()
	out, err := exec.Command("ip", "-4", "-o", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatalf("ip route show: %v", err)
	}
	var used []*net.IPNet
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if _, n, err := net.ParseCIDR(f); err == nil {
				used = append(used, n)
				break
			}
			if ip := net.ParseIP(f); ip != nil {
				used = append(used, &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)})
				break
			}
		}
	}
	start := 16 + os.Getpid()%200
	for k := range 200 {
		b := 16 + (start-16+k)%200
		cand := &net.IPNet{IP: net.IPv4(10, byte(b), 0, 0).To4(), Mask: net.CIDRMask(16, 32)}
		free := true
		for _, u := range used {
			if u.Contains(cand.IP) || cand.Contains(u.IP) {
				free = false
				break
			}
		}
		if free {
			return b
		}
	}
	t.Fatal("no free 10.B.0.0/16 for the lab's links")
	return 0
}

// netHTTP gets url (a node's /readyz or /metrics over its client link).
func netHTTP(url string) (int, string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b), err
}

// TestNetLabSweep: what a test process that died left behind (a namespace
// and a veth pair named after its pid) is removed by the next lab, and a
// live lab's namespaces are not.
func TestNetLabSweep(t *testing.T) {
	lab := newNetLab(t, 1) // skips where namespaces cannot be made
	dead := 0
	for pid := 32767; pid > 300; pid-- {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			dead = pid
			break
		}
	}
	if dead == 0 {
		t.Fatal("no unused pid to name a stale lab after")
	}
	stale := fmt.Sprintf("%s%dz", netPrefix, dead)
	t.Cleanup(func() { _ = netDel("netns", stale+"n0"); _ = netDel("link", stale+"c0") })
	lab.ip("netns", "add", stale+"n0")
	lab.ip("link", "add", stale+"c0", "type", "veth", "peer", "name", stale+"x0")

	netSweep(t)
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), stale) {
		t.Errorf("the stale namespace %sn0 is still there:\n%s", stale, out)
	}
	for _, dev := range []string{stale + "c0", stale + "x0"} {
		if exec.Command("ip", "link", "show", "dev", dev).Run() == nil {
			t.Errorf("the stale link %s is still there", dev)
		}
	}
	for _, ns := range []string{lab.sw, lab.nodes[0].NS} {
		if !strings.Contains(string(out), ns) {
			t.Errorf("the live lab's namespace %s was swept:\n%s", ns, out)
		}
	}
}
