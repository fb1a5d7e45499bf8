package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aigress/aigress/certs"
)

func newCACmd() *cobra.Command {
	ca := &cobra.Command{Use: "ca", Short: "Create or export the interception CA"}
	var dir string
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Create an ECDSA P-256 root CA in DIR (ca.pem, ca-key.pem); never overwrites",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				dir = defaultDataDir()
			}
			c, err := certs.Init(dir, certs.InitOptions{})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %s/%s (SHA-256 %s)\n", dir, certs.CertFile, c.Fingerprint())
			return nil
		},
	}
	initCmd.Flags().StringVar(&dir, "dir", "", "directory for ca.pem and ca-key.pem (default: the data directory)")

	var exportDir, certFile, keyFile, format string
	export := &cobra.Command{
		Use:   "export",
		Short: "Print the CA certificate (PEM or DER) for MDM/GPO distribution",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var c *certs.CA
			var err error
			switch {
			case certFile != "":
				if keyFile == "" {
					return fmt.Errorf("ca export: --cert needs --key")
				}
				c, err = certs.Load(certFile, keyFile)
			default:
				if exportDir == "" {
					exportDir = defaultDataDir()
				}
				c, err = certs.LoadDir(exportDir)
			}
			if err != nil {
				return err
			}
			switch format {
			case "pem":
				_, err = cmd.OutOrStdout().Write(c.CertPEM())
			case "der":
				_, err = cmd.OutOrStdout().Write(c.CertDER())
			default:
				return fmt.Errorf("ca export: unknown --format %q (want pem or der)", format)
			}
			return err
		},
	}
	export.Flags().StringVar(&exportDir, "dir", "", "CA directory (default: the data directory)")
	export.Flags().StringVar(&certFile, "cert", "", "CA certificate file (instead of --dir)")
	export.Flags().StringVar(&keyFile, "key", "", "CA key file (with --cert)")
	export.Flags().StringVar(&format, "format", "pem", "pem or der")
	ca.AddCommand(initCmd, export)
	return ca
}
