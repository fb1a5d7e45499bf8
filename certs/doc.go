// Package certs owns the enterprise CA: creating a local ECDSA P-256 root
// (`aigress ca init`), loading an existing enterprise root or intermediate
// (RSA or ECDSA, PEM, with its chain), minting leaf certificates and caching
// them.
//
// Contracts:
//   - Signing always goes through crypto.Signer, so the CA key can move to a
//     KMS or HSM without touching callers.
//   - Leaves are ECDSA P-256 whatever the CA's key type, carry the SNI name
//     (or the CONNECT host) as their only SAN (DNS or IP), and never outlive
//     the CA.
//   - All leaves of one process share one P-256 key generated at start and
//     never written anywhere: minting then costs a single signature, which
//     keeps a cold mint well under a millisecond. This is what mitmproxy
//     does too; the key's exposure is the process's memory either way.
//   - The cache is a bounded LRU (golang-lru/v2). An entry is served for at
//     most a quarter of the leaf's validity, so a cached leaf always has most
//     of its life left. Concurrent misses for one name mint once.
//   - A CA is never overwritten: Init fails with ErrExists (files are created
//     with O_EXCL) and the key file is mode 0600.
package certs
