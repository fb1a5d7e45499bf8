// Command aigress: the CLI (run, ca, scan, policy, dns, sniff, inventory,
// report, version), config loading (strict YAML, flags override the
// config), and the wiring of the proxy's stages, whose order lives in
// stages.go alone.
package main
