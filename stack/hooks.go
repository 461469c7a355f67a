package stack

import (
	"log/slog"

	"github.com/sshvpn/sshvpn/hook"
)

// Hooks is the stage that runs the up hook when the tunnel first comes up
// and the down hook when it goes down; with Rehook, also around every
// reconnect (SSHVPN_SCRIPT_CONTEXT=restart). Its place in the stack is
// after what the hooks may rely on (routes, NAT, DNS).
type Hooks struct {
	Runner *hook.Runner
	Env    hook.Env // Side, and Peer on the server; the rest comes from Conf
	Rehook bool
	Log    *slog.Logger

	ran bool // the up hook ran: a later Up is a reconnect
}

func (h *Hooks) Up(c *Conf) error {
	env := h.Env
	t := c.Tunnel
	env.Dev, env.Mode, env.MTU = c.Dev, string(t.Mode), t.MTU
	env.Addrs, env.PeerAddrs, env.Routes = t.Addrs, t.PeerAddrs, c.Routes
	if c.Server.IsValid() && env.Side == "local" {
		env.Server = c.Server.String()
	}
	if h.ran && !h.Rehook {
		h.Runner.Update(env) // the down hook at the end gets the tunnel as it is then
		return nil
	}
	env.Context = "init"
	if h.ran {
		env.Context = "restart"
	}
	if err := h.Runner.RunUp(env); err != nil {
		return err
	}
	h.ran = true
	return nil
}

// Detached runs the down hook for a reconnect, with Rehook.
func (h *Hooks) Detached() {
	if !h.Rehook {
		return
	}
	if err := h.Runner.RunDown("restart"); err != nil && h.Log != nil {
		h.Log.Error(err.Error())
	}
}

// Down runs the down hook (if the up hook ran).
func (h *Hooks) Down() error { return h.Runner.RunDown("init") }
