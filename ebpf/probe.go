//go:build linux

package ebpf

import (
	"errors"
	"fmt"
	"os"
	"strings"

	cebpf "github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// ErrNotSupported is wrapped by every error that means "this kernel or these
// privileges can't run eBPF mode"; callers fall back to iptables/nftables.
var ErrNotSupported = errors.New("ebpf: not supported")

const fallbackHint = "use --transparent-listen with deploy/iptables or deploy/nftables instead"

// Linux capability numbers (x/sys/unix has no names for them).
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// Probe checks, without attaching anything, that this kernel and process
// can run eBPF mode on the default cgroup (DefaultCgroupPath). The error
// wraps ErrNotSupported and names everything that is missing.
func Probe() error {
	p, err := DefaultCgroupPath()
	if err != nil {
		return err
	}
	return probe(p)
}

// ProbeCgroup is Probe for a given cgroup v2 directory.
func ProbeCgroup(path string) error { return probe(path) }

func probe(cgroupPath string) error {
	var missing []string
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		missing = append(missing, "no kernel BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF=y is needed for CO-RE)")
	}
	if !isCgroup2(cgroupPath) {
		missing = append(missing, fmt.Sprintf("cgroup v2 is not mounted at %s", cgroupPath))
	}
	capsOK := true
	if m := missingCaps(); len(m) > 0 {
		capsOK = false
		missing = append(missing, "missing capabilities "+strings.Join(m, ", "))
	}
	if capsOK {
		// Feature probes load tiny programs and maps: they need the caps.
		for _, pt := range []struct {
			t    cebpf.ProgramType
			name string
		}{{cebpf.CGroupSockAddr, "cgroup_sock_addr"}, {cebpf.SockOps, "sock_ops"}} {
			if err := features.HaveProgramType(pt.t); err != nil {
				missing = append(missing, fmt.Sprintf("program type %s unsupported (%v)", pt.name, err))
			}
		}
		for _, mt := range []struct {
			t    cebpf.MapType
			name string
		}{{cebpf.RingBuf, "ringbuf (Linux >= 5.8)"}, {cebpf.LPMTrie, "lpm_trie"}, {cebpf.LRUHash, "lru_hash"}} {
			if err := features.HaveMapType(mt.t); err != nil {
				missing = append(missing, fmt.Sprintf("map type %s unsupported (%v)", mt.name, err))
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s; %s", ErrNotSupported, strings.Join(missing, "; "), fallbackHint)
}

// missingCaps lists the effective capabilities eBPF mode lacks. CAP_SYS_ADMIN
// stands in for CAP_BPF and CAP_PERFMON (kernels before 5.8 only know it).
func missingCaps() []string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return []string{fmt.Sprintf("(capget: %v)", err)}
	}
	have := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	var m []string
	if !have(capBPF) && !have(capSysAdmin) {
		m = append(m, "CAP_BPF")
	}
	if !have(capNetAdmin) {
		m = append(m, "CAP_NET_ADMIN")
	}
	if !have(capPerfmon) && !have(capSysAdmin) {
		m = append(m, "CAP_PERFMON")
	}
	return m
}
