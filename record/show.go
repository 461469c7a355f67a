package record

import (
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sshvpn/sshvpn/internal/proc"
	"github.com/sshvpn/sshvpn/internal/text"
	"github.com/sshvpn/sshvpn/registry"
)

// Show writes one block per session, for a person (sshvpn status): recs
// as All returns them, at now; here is the caller's network namespace
// (proc.NetNS), and hidden how many sessions of other namespaces were
// left out of recs.
func Show(w io.Writer, recs []registry.Record, now time.Time, here string, hidden int) {
	defer func() {
		if hidden > 0 {
			fmt.Fprintf(w, "(%d more in other network namespaces: sshvpn status --all)\n", hidden)
		}
	}()
	if len(recs) == 0 {
		fmt.Fprintln(w, "no sshvpn tunnels are running")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, r := range recs {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		// Records are files anyone of their account could have written,
		// and carry text from the network (the reason a connection
		// ended): nothing of them reaches the terminal raw.
		r.Profile, r.Peer, r.User, r.Key, r.Dev, r.NetNS = clean(r.Profile), clean(r.Peer), clean(r.User), clean(r.Key), clean(r.Dev), clean(r.NetNS)
		if r.Status != nil {
			st := *r.Status
			st.Reason, st.Offloads, st.State = clean(st.Reason), clean(st.Offloads), clean(st.State)
			r.Status = &st
		}
		title := fmt.Sprintf("%s %s", r.Side, orDash(r.Dev))
		if r.Profile != "" {
			title += " (profile " + r.Profile + ")"
		}
		// No tab: the title's length does not move the columns below.
		fmt.Fprintf(tw, "%s, pid %d\n", title, r.PID)
		if r.NetNS != here {
			ns := r.NetNS
			if name := proc.NetNSName(r.NetNS); name != "" {
				ns = clean(name) + " (" + ns + ")"
			}
			fmt.Fprintf(tw, "  netns\t%s\n", ns)
		}
		peer := "server"
		if r.Side == registry.SideRemote {
			peer = "client"
		}
		who := orDash(r.Peer)
		if r.User != "" {
			who += " as " + r.User
		}
		if r.Key != "" {
			who += ", key " + r.Key
		}
		fmt.Fprintf(tw, "  %s\t%s\n", peer, who)
		if r.ProfileFile != "" {
			fmt.Fprintf(tw, "  profile\t%s\n", clean(r.ProfileFile))
		}
		fmt.Fprintf(tw, "  addresses\t%s ⇄ %s\n", orDash(join(r.Addrs)), orDash(join(r.PeerAddrs)))
		if r.Lease > 0 {
			fmt.Fprintf(tw, "  lease\t%d\n", r.Lease-1)
		}
		var routes []string
		for _, rt := range r.Added {
			routes = append(routes, rt.Dst.String())
		}
		if len(routes) > 0 {
			fmt.Fprintf(tw, "  routes\t%s\n", strings.Join(routes, ", "))
		}
		st := r.Status
		if st == nil {
			fmt.Fprintf(tw, "  state\tstarting (since %s)\n", ago(now, r.Started))
			continue
		}
		state := st.State
		switch st.State {
		case registry.StateUp:
			state = "up " + ago(now, st.Since)
		case registry.StateReconnecting:
			state = fmt.Sprintf("reconnecting, attempt %d, for %s: %s", st.Attempt, ago(now, st.Since), st.Reason)
		}
		fmt.Fprintf(tw, "  state\t%s\n", state)
		fmt.Fprintf(tw, "  running\t%s, %s\n", ago(now, r.Started), count(uint64(st.Reconnects), "reconnect"))
		if st.RTT > 0 {
			fmt.Fprintf(tw, "  rtt\t%s (last keepalive)\n", st.RTT.Round(time.Microsecond))
		} else {
			fmt.Fprintf(tw, "  rtt\t- (no keepalive answered yet)\n")
		}
		if st.MTU > 0 {
			fmt.Fprintf(tw, "  mtu\t%d, offloads %s\n", st.MTU, orDash(st.Offloads))
		}
		fmt.Fprintf(tw, "  sent\t%s in %s\n", bytesHuman(st.BytesOut), count(st.PacketsOut, "packet"))
		fmt.Fprintf(tw, "  received\t%s in %s\n", bytesHuman(st.BytesIn), count(st.PacketsIn, "packet"))
		for i, c := range st.Streams {
			rtt := "rtt -"
			if c.RTT > 0 {
				rtt = "rtt " + c.RTT.Round(time.Microsecond).String()
			}
			fmt.Fprintf(tw, "  stream %d\t%s, %s, sent %s, received %s\n", i+1, clean(c.State), rtt, bytesHuman(c.BytesOut), bytesHuman(c.BytesIn))
		}
		var d []string
		for _, k := range slices.Sorted(maps.Keys(st.Drops)) {
			if k != MarkedECN {
				d = append(d, fmt.Sprintf("%s %d", strings.ReplaceAll(k, "_", " "), st.Drops[k]))
			}
		}
		if len(d) > 0 {
			fmt.Fprintf(tw, "  dropped\t%s\n", strings.Join(d, ", "))
		}
		if n := st.Drops[MarkedECN]; n > 0 {
			fmt.Fprintf(tw, "  ecn\t%s marked (congestion experienced) by the queue\n", count(n, "packet"))
		}
		if age := now.Sub(st.Updated); age > 3*RecordEvery {
			fmt.Fprintf(tw, "  note\tlast refreshed %s ago: the process may be stuck\n", age.Round(time.Second))
		}
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago says how long ago t was, to the second.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String()
}

// bytesHuman writes n bytes with a binary unit.
func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func clean(s string) string { return text.Clean(s, false) }

// join writes prefixes as a comma-separated list.
func join(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// count is n things, in the singular for one.
func count(n uint64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
