// Command peer is the workload of tierguard's data-plane tests: each "pod"
// (a network namespace) runs `peer serve`, and connections between pods are
// attempted with `peer connect` and `peer dns`.
//
//	peer serve -tcp 80,5432 -udp 53 -dns     # answer on those ports; -dns: UDP 53 is a DNS responder
//	peer connect -timeout 1s 10.89.0.3:5432  # exit 0: connected and got the greeting; 1: closed
//	peer connect -udp -timeout 1s 10.89.0.3:9000
//	peer dns -timeout 1s 10.89.0.2:53 backend-service.backend.svc.cluster.local
//	peer probe -timeout 1s < probes            # lines "tcp|udp HOST:PORT"; prints "open"/"closed" per line
//	peer hammer -for 10s -every 20ms 10.89.0.3:80  # one attempt per interval; prints "MS open|closed" each
//
// A TCP connection gets one line, "peer <name> tcp/<port>", then is closed.
// A UDP datagram is echoed back prefixed with "peer <name> udp/<port> ".
// The DNS responder answers every A query in IN with one record, 10.0.0.10,
// and every other query with NOTIMP.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "connect":
		err = connect(os.Args[2:])
	case "dns":
		err = dns(os.Args[2:])
	case "probe":
		err = probe(os.Args[2:])
	case "hammer":
		err = hammer(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: peer serve [-name N] [-tcp P,P] [-udp P,P] [-dns] | peer connect [-udp] [-timeout D] HOST:PORT | peer dns [-timeout D] HOST:PORT NAME | peer probe [-timeout D] | peer hammer [-for D] [-every D] HOST:PORT")
	os.Exit(2)
}

func ports(list string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(list, ",") {
		if p == "" {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("bad port %q", p)
		}
		out = append(out, n)
	}
	return out, nil
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	name := fs.String("name", "", "name in the greeting (default: hostname)")
	tcpList := fs.String("tcp", "", "TCP ports, comma-separated")
	udpList := fs.String("udp", "", "UDP ports, comma-separated")
	dnsOn53 := fs.Bool("dns", false, "UDP port 53 answers DNS")
	_ = fs.Parse(args)
	if *name == "" {
		*name, _ = os.Hostname()
	}
	tcp, err := ports(*tcpList)
	if err != nil {
		return err
	}
	udp, err := ports(*udpList)
	if err != nil {
		return err
	}
	errs := make(chan error, len(tcp)+len(udp))
	for _, p := range tcp {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			return err
		}
		go func(p int) {
			for {
				c, err := l.Accept()
				if err != nil {
					errs <- err
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(5 * time.Second))
					fmt.Fprintf(c, "peer %s tcp/%d\n", *name, p)
				}()
			}
		}(p)
	}
	for _, p := range udp {
		c, err := net.ListenPacket("udp", ":"+strconv.Itoa(p))
		if err != nil {
			return err
		}
		go func(p int) {
			buf := make([]byte, 1500)
			for {
				n, from, err := c.ReadFrom(buf)
				if err != nil {
					errs <- err
					return
				}
				var reply []byte
				if p == 53 && *dnsOn53 {
					reply = dnsAnswer(buf[:n])
				} else {
					reply = append([]byte(fmt.Sprintf("peer %s udp/%d ", *name, p)), buf[:n]...)
				}
				if reply != nil {
					_, _ = c.WriteTo(reply, from)
				}
			}
		}(p)
	}
	// Ready: the listeners are bound.
	fmt.Println("ready")
	return <-errs
}

func connect(args []string) error {
	fs := flag.NewFlagSet("connect", flag.ExitOnError)
	udp := fs.Bool("udp", false, "UDP: send a datagram and wait for its echo")
	timeout := fs.Duration("timeout", time.Second, "give up after")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	network := "tcp"
	if *udp {
		network = "udp"
	}
	reply, err := attempt(network, fs.Arg(0), *timeout)
	if err != nil {
		return err
	}
	fmt.Println(reply)
	return nil
}

// attempt makes one connection: nil when the server's greeting (TCP) or
// echo (UDP) came back within timeout.
func attempt(network, addr string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if network == "udp" {
		if _, err := c.Write([]byte("hello")); err != nil {
			return "", err
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			return "", err
		}
		if !strings.HasPrefix(string(buf[:n]), "peer ") {
			return "", fmt.Errorf("%s: unexpected reply %q", addr, buf[:n])
		}
		return string(buf[:n]), nil
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(line, "peer ") {
		return "", fmt.Errorf("%s: unexpected greeting %q", addr, line)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// probe reads "tcp|udp HOST:PORT" lines on stdin and prints, in the same
// order, "open" or "closed" for each, attempting up to 64 at a time.
func probe(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	timeout := fs.Duration("timeout", time.Second, "give up on one connection after")
	_ = fs.Parse(args)
	var lines [][2]string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 || (f[0] != "tcp" && f[0] != "udp") {
			return fmt.Errorf("bad probe line %q (want: tcp|udp HOST:PORT)", sc.Text())
		}
		lines = append(lines, [2]string{f[0], f[1]})
	}
	if err := sc.Err(); err != nil {
		return err
	}
	results := make([]string, len(lines))
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i, l := range lines {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int, network, addr string) {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := attempt(network, addr, *timeout); err != nil {
				results[i] = "closed"
			} else {
				results[i] = "open"
			}
		}(i, l[0], l[1])
	}
	wg.Wait()
	for _, r := range results {
		fmt.Println(r)
	}
	return nil
}

// hammer attempts a TCP connection every interval for a while and prints,
// per attempt, the milliseconds since it started and "open" or "closed",
// so a window in which connections got through can be measured.
func hammer(args []string) error {
	fs := flag.NewFlagSet("hammer", flag.ExitOnError)
	total := fs.Duration("for", 10*time.Second, "how long")
	every := fs.Duration("every", 20*time.Millisecond, "one attempt per")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	start := time.Now()
	for time.Since(start) < *total {
		t := time.Since(start)
		result := "open"
		if _, err := attempt("tcp", fs.Arg(0), *every); err != nil {
			result = "closed"
		}
		fmt.Printf("%d %s\n", t.Milliseconds(), result)
		if rest := *every - (time.Since(start) - t); rest > 0 {
			time.Sleep(rest)
		}
	}
	return nil
}

func dns(args []string) error {
	fs := flag.NewFlagSet("dns", flag.ExitOnError)
	timeout := fs.Duration("timeout", time.Second, "give up after")
	_ = fs.Parse(args)
	if fs.NArg() != 2 {
		usage()
	}
	c, err := net.DialTimeout("udp", fs.Arg(0), *timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(*timeout))
	const id = 0x7467
	q, err := dnsQuery(id, fs.Arg(1))
	if err != nil {
		return err
	}
	if _, err := c.Write(q); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	ip, err := dnsFirstA(buf[:n], id)
	if err != nil {
		return err
	}
	fmt.Printf("%s A %s\n", fs.Arg(1), ip)
	return nil
}

// dnsQuery builds a recursive query for NAME's A record.
func dnsQuery(id uint16, name string) ([]byte, error) {
	msg := make([]byte, 12, 64)
	binary.BigEndian.PutUint16(msg[0:], id)
	binary.BigEndian.PutUint16(msg[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(msg[4:], 1)      // QDCOUNT
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		if len(label) == 0 || len(label) > 63 {
			return nil, fmt.Errorf("bad name %q", name)
		}
		msg = append(msg, byte(len(label)))
		msg = append(msg, label...)
	}
	msg = append(msg, 0, 0, 1, 0, 1) // root, QTYPE A, QCLASS IN
	return msg, nil
}

// questionEnd returns the offset just past the single question of msg.
func questionEnd(msg []byte) (int, error) {
	i := 12
	for {
		if i >= len(msg) {
			return 0, errors.New("truncated question")
		}
		l := int(msg[i])
		if l == 0 {
			i++
			break
		}
		if l > 63 {
			return 0, errors.New("compressed or bad label in question")
		}
		i += 1 + l
	}
	if i+4 > len(msg) {
		return 0, errors.New("truncated question")
	}
	return i + 4, nil
}

// dnsAnswer answers a query: A/IN gets 10.0.0.10, anything else NOTIMP.
// Malformed messages get no answer.
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 || q[2]&0x80 != 0 {
		return nil
	}
	end, err := questionEnd(q)
	if err != nil {
		return nil
	}
	resp := append([]byte(nil), q[:end]...)
	qtype := binary.BigEndian.Uint16(q[end-4:])
	qclass := binary.BigEndian.Uint16(q[end-2:])
	flags := uint16(0x8000 | 0x0400 | uint16(q[2]&0x01)<<8) // QR, AA, copy RD
	binary.BigEndian.PutUint16(resp[6:], 0)                 // ANCOUNT
	binary.BigEndian.PutUint16(resp[8:], 0)
	binary.BigEndian.PutUint16(resp[10:], 0)
	if qtype != 1 || qclass != 1 {
		binary.BigEndian.PutUint16(resp[2:], flags|4) // NOTIMP
		return resp
	}
	binary.BigEndian.PutUint16(resp[2:], flags)
	binary.BigEndian.PutUint16(resp[6:], 1)
	// Name: pointer to the question's name at offset 12; A, IN, TTL 5, 4 bytes.
	resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 10)
	return resp
}

// dnsFirstA checks the reply's id and rcode and returns its first A record.
func dnsFirstA(msg []byte, id uint16) (net.IP, error) {
	if len(msg) < 12 || binary.BigEndian.Uint16(msg[0:]) != id {
		return nil, errors.New("reply with another id")
	}
	if rcode := msg[3] & 0x0f; rcode != 0 {
		return nil, fmt.Errorf("rcode %d", rcode)
	}
	if binary.BigEndian.Uint16(msg[6:]) == 0 {
		return nil, errors.New("no answer")
	}
	end, err := questionEnd(msg)
	if err != nil {
		return nil, err
	}
	// The answer's name is a pointer (2 bytes), then type, class, ttl, rdlength.
	if end+12 > len(msg) || msg[end]&0xc0 != 0xc0 {
		return nil, errors.New("unexpected answer layout")
	}
	rdlen := int(binary.BigEndian.Uint16(msg[end+10:]))
	if binary.BigEndian.Uint16(msg[end+2:]) != 1 || rdlen != 4 || end+12+4 > len(msg) {
		return nil, errors.New("first answer is not an A record")
	}
	return net.IP(msg[end+12 : end+16]), nil
}
