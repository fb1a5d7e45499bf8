//go:build linux

package ebpf

import (
	"net/netip"
	"strings"
	"testing"
)

func TestUnitAndContainer(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	cases := []struct {
		name, path, unit, container string
	}{
		{"ok/systemd-service", "/system.slice/cron.service", "cron.service", ""},
		{"ok/user-scope", "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-firefox-42.scope", "app-gnome-firefox-42.scope", ""},
		{"ok/docker-systemd-driver", "/system.slice/docker-" + id + ".scope", "docker-" + id + ".scope", id},
		{"ok/docker-cgroupfs-driver", "/docker/" + id, "", id},
		{"ok/containerd-k8s", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-" + id + ".scope", "cri-containerd-" + id + ".scope", id},
		{"ok/podman", "/machine.slice/libpod-" + id + ".scope/container", "libpod-" + id + ".scope", id},
		{"ok/root", "/", "", ""},
		{"fail/empty", "", "", ""},
		{"fail/short-id", "/docker/0123456789ab", "", ""},
		{"fail/not-hex", "/docker/" + strings.Repeat("z", 64), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := unitOf(tc.path); got != tc.unit {
				t.Errorf("unitOf = %q, want %q", got, tc.unit)
			}
			if got := containerOf(tc.path); got != tc.container {
				t.Errorf("containerOf = %q, want %q", got, tc.container)
			}
		})
	}
}

const sampleMountinfo = `22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 31 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
`

func TestParseCgroup2Mount(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"ok/hybrid", sampleMountinfo, "/sys/fs/cgroup/unified"},
		{"ok/unified", "30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup"},
		{"ok/escaped-space", "30 24 0:26 / /mnt/cg\\040two rw - cgroup2 none rw\n", "/mnt/cg two"},
		{"fail/v1-only", "33 31 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw\n", ""},
		{"fail/garbage", "no separator here\n - \n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseCgroup2Mount([]byte(tc.in)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProcCgroupV2(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"ok/hybrid", "9:name=systemd:/\n4:memory:/x\n0::/aigress-test\n", "/aigress-test"},
		{"ok/unified", "0::/system.slice/cron.service\n", "/system.slice/cron.service"},
		{"fail/v1-only", "4:memory:/x\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := procCgroupV2([]byte(tc.in)); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAddrKeyRoundTrip(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"ok/v4", "127.0.0.1:40000", "127.0.0.1:40000"},
		{"ok/v4-mapped-is-v4", "[::ffff:10.1.2.3]:443", "10.1.2.3:443"},
		{"ok/v6", "[2001:db8::1]:8443", "[2001:db8::1]:8443"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			k := addrKey(netip.MustParseAddrPort(tc.in))
			got := netip.AddrPortFrom(addrFrom(k.Family, k.Ip), k.Port).String()
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func FuzzCgroupPath(f *testing.F) {
	for _, s := range []string{"/system.slice/cron.service", "/docker/" + strings.Repeat("a", 64), "", "/", "-.scope/", "//x.service//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		u := unitOf(p)
		if u != "" && !strings.Contains(p, u) {
			t.Fatalf("unit %q not in %q", u, p)
		}
		c := containerOf(p)
		if c != "" && (len(c) != 64 || !strings.Contains(p, c)) {
			t.Fatalf("container %q from %q", c, p)
		}
	})
}

func FuzzMountinfo(f *testing.F) {
	f.Add([]byte(sampleMountinfo))
	f.Add([]byte("30 24 0:26 / /mnt/cg\\040two rw - cgroup2 none rw\n"))
	f.Add([]byte(" - cgroup2\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = parseCgroup2Mount(b)
		_ = procCgroupV2(b)
	})
}
