//go:build linux

package ebpf

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultCgroupPath is the cgroup v2 directory used when Options.CgroupPath
// is empty: /sys/fs/cgroup/unified (hybrid hierarchy) if it is cgroup2,
// else /sys/fs/cgroup if that is cgroup2.
func DefaultCgroupPath() (string, error) {
	for _, p := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		if isCgroup2(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: cgroup v2 is not mounted at /sys/fs/cgroup/unified or /sys/fs/cgroup; use --transparent-listen with deploy/iptables or deploy/nftables instead", ErrNotSupported)
}

func isCgroup2(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}

// cgroup2Root finds the cgroup2 mount point from /proc/self/mountinfo.
func cgroup2Root() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("ebpf: read mountinfo: %w", err)
	}
	if root := parseCgroup2Mount(b); root != "" {
		return root, nil
	}
	return "", fmt.Errorf("%w: no cgroup2 mount in /proc/self/mountinfo", ErrNotSupported)
}

// parseCgroup2Mount returns the mount point of the first cgroup2 file
// system in a mountinfo text, or "".
func parseCgroup2Mount(mountinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - cgroup2 cgroup2 rw
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		if f := strings.Fields(post); len(f) == 0 || f[0] != "cgroup2" {
			continue
		}
		f := strings.Fields(pre)
		if len(f) >= 5 {
			return unescapeMount(f[4])
		}
	}
	return ""
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupResolver maps cgroup ids (the inode numbers of cgroup2 directories)
// to paths relative to the cgroup2 root. It caches hits and misses; a full
// walk of the hierarchy happens at most once per walkEvery.
type cgroupResolver struct {
	root string

	mu       sync.Mutex
	cache    map[uint64]string // "" = known miss
	lastWalk time.Time
}

const (
	cgroupCacheMax = 8192
	walkEvery      = time.Second
)

func newCgroupResolver(root string) *cgroupResolver {
	return &cgroupResolver{root: root, cache: make(map[uint64]string)}
}

func (c *cgroupResolver) path(id uint64, tgid uint32) string {
	if id == 0 {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.cache[id]; ok && p != "" {
		return p
	}
	// Fast path: the process is usually still alive.
	if p := c.fromProc(id, tgid); p != "" {
		c.put(id, p)
		return p
	}
	if time.Since(c.lastWalk) < walkEvery {
		return ""
	}
	c.lastWalk = time.Now()
	c.walk()
	p := c.cache[id]
	if p == "" {
		c.put(id, "")
	}
	return p
}

func (c *cgroupResolver) put(id uint64, p string) {
	if len(c.cache) >= cgroupCacheMax {
		clear(c.cache)
	}
	c.cache[id] = p
}

func (c *cgroupResolver) fromProc(id uint64, tgid uint32) string {
	if tgid == 0 {
		return ""
	}
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(tgid), 10) + "/cgroup")
	if err != nil {
		return ""
	}
	rel := procCgroupV2(b)
	if rel == "" {
		return ""
	}
	if inode(filepath.Join(c.root, rel)) != id {
		return "" // it moved since connect(), or a cgroup namespace hides the root
	}
	return rel
}

// walk indexes every cgroup directory by inode. Called with c.mu held.
func (c *cgroupResolver) walk() {
	_ = filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == c.root {
				return err
			}
			return nil // vanished while walking
		}
		if !d.IsDir() {
			return nil
		}
		if ino := inode(p); ino != 0 {
			rel := strings.TrimPrefix(p, c.root)
			if rel == "" {
				rel = "/"
			}
			c.put(ino, rel)
		}
		return nil
	})
}

func inode(p string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return 0
	}
	return st.Ino
}

// procCgroupV2 returns the path of the "0::" line of /proc/PID/cgroup.
func procCgroupV2(b []byte) string {
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return rest
		}
	}
	return ""
}

// unitOf derives the systemd unit from a cgroup path: the last path element
// that names a service or scope ("/system.slice/cron.service" → cron.service).
func unitOf(path string) string {
	elems := strings.Split(path, "/")
	for i := len(elems) - 1; i >= 0; i-- {
		e := elems[i]
		if strings.HasSuffix(e, ".service") || strings.HasSuffix(e, ".scope") {
			return e
		}
	}
	return ""
}

var containerRe = regexp.MustCompile(`(?:^|[/-])([0-9a-f]{64})(?:\.scope)?(?:/|$)`)

// containerOf finds a container id in a cgroup path: docker-<id>.scope,
// /docker/<id>, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope,
// /kubepods/.../<id>. The innermost id wins.
func containerOf(path string) string {
	m := containerRe.FindAllStringSubmatch(path, -1)
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1][1]
}
