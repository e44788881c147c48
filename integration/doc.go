// Package integration holds end-to-end tests that run the real gearbridge
// binary, and C gearmand 1.1.20 beside it, against raw-protocol clients,
// the libgearman command-line tools, the gearman-go library and Perl's
// Gearman::Client and Gearman::Worker.
//
// The tests need /usr/sbin/gearmand, gearman and gearadmin (Debian packages
// gearman-job-server and gearman-tools) and the Perl modules (package
// libgearman-client-perl). Without them the tests skip, except under
// CI=true, where a missing tool fails the test.
package integration
