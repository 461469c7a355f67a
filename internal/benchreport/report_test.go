package benchreport

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

const sample = "set\tprofile\tdelay=20ms\n" +
	"val\tmbps\tsshvpn\tup\t300\nval\tmbps\tsshvpn\tup\t100\nval\tmbps\tsshvpn\tup\t200\n" +
	"val\tmbps\tdirect\tup\t400\nval\tmbps\tssh-w\tup\tfail\n" +
	"val\trtt_ms\tsshvpn\t-\t41.5\nval\trtt_p90_ms\tsshvpn\t-\t42\nval\trtt_max_ms\tsshvpn\t-\t45.25\n" +
	"val\tload_p50_ms\tsshvpn\tup\t48\nval\tmbps\traw-ssh\tup\t800\n"

func TestReport(t *testing.T) {
	r, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := r.Median(Mbps, "sshvpn", "up"); !ok || m != 200 {
		t.Errorf("median %v %v, want 200", m, ok)
	}
	if x, ok := r.Ratio("sshvpn", "direct", "up"); !ok || x != 0.5 {
		t.Errorf("ratio %v %v, want 0.5", x, ok)
	}
	if _, ok := r.Ratio("sshvpn", "ssh-w", "up"); ok {
		t.Error("a ratio to a failed contender")
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, []*Run{r}); err != nil {
		t.Fatal(err)
	}
	if want := "| delay=20ms | sshvpn | up | 200 | 0.50 | - | 0.25 | 41.50 / 42.00 / 45.25 | 48.0 | - | - |"; !strings.Contains(md.String(), want) {
		t.Errorf("markdown:\n%s\nwant a row %q", md.String(), want)
	}
	if !strings.Contains(md.String(), "| delay=20ms | ssh-w | up | - |") {
		t.Errorf("a failed contender has no row:\n%s", md.String())
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, []*Run{r}); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Runs []struct {
			Profile    string
			Contenders []struct {
				Name    string
				Figures map[string]map[string]struct {
					Median *float64
					Values []float64
					Failed int
				}
			}
		}
	}
	if err := json.Unmarshal(js.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	c := out.Runs[0].Contenders[0]
	if out.Runs[0].Profile != "delay=20ms" || c.Name != "sshvpn" || *c.Figures["mbps"]["up"].Median != 200 || len(c.Figures["mbps"]["up"].Values) != 3 {
		t.Errorf("json: %s", js.String())
	}
	if f := out.Runs[0].Contenders[2].Figures["mbps"]["up"]; f.Median != nil || f.Failed != 1 {
		t.Errorf("failed contender in json: %+v", f)
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{"val\tmbps\tx\tsideways\t1\n", "val\tmbps\tx\tup\tNaN\n", "junk\n", "val\tmbps\tx\tup\n"} {
		if _, err := Parse(strings.NewReader(bad)); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
