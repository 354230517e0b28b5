// Package layout holds no code: its test enforces the package layout of
// docs/architecture.md, in which a package imports only packages listed
// below it, and the leaves (pki, apiv1, fault, atomicfile) import nothing of ours.
package layout
