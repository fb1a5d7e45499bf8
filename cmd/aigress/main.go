package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(execute(os.Args[1:]))
}

// execute runs the CLI and returns the process exit code.
func execute(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "aigress:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "aigress:", err)
	return 1
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "aigress",
		Short:         "aigress: see and govern AI traffic leaving the network",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newRunCmd(),
		newCACmd(),
		newVersionCmd(),
		newScanCmd(),
		newPolicyCmd(),
		newDNSCmd(),
		newSniffCmd(),
		newInventoryCmd(),
		newReportCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "aigress", version)
			return nil
		},
	}
}

// defaultDataDir is where every command keeps its CA, audit trail and
// store unless --data-dir says otherwise: $AIGRESS_DATA_DIR, else
// /var/lib/aigress for root, else ~/.local/share/aigress.
func defaultDataDir() string {
	if d := os.Getenv("AIGRESS_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/aigress"
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "share", "aigress")
	}
	return "aigress-data"
}
