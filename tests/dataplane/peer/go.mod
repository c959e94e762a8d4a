// Test-only module: the "application" of every pod in tierguard's data-plane
// tests (a TCP/UDP server and a DNS responder) and the client that probes
// them. Standard library only. Not part of the product. See ../README.md.
module tierguard.test/dataplane/peer

go 1.24
