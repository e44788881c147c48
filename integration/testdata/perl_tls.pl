#!/usr/bin/perl
# Gearman::Client and Gearman::Worker over TLS (IO::Socket::SSL):
# perl_tls.pl worker|client PORT CA_FILE [CERT_FILE KEY_FILE].
# The worker reverses its argument; the client prints one line per event.
use strict;
use warnings;
use Gearman::Client;
use Gearman::Worker;

my ($mode, $port, $ca, $cert, $key) = @ARGV;
my %server = (host => "127.0.0.1", port => $port, use_ssl => 1, ca_file => $ca);
$server{cert_file} = $cert if $cert;
$server{key_file} = $key if $key;
$| = 1;

if ($mode eq "worker") {
    my $w = Gearman::Worker->new(job_servers => [\%server]);
    $w->register_function(perl_tls_reverse => sub { return scalar reverse $_[0]->arg });
    $w->work while 1;
}

my $c = Gearman::Client->new(job_servers => [\%server]);
my $res = $c->do_task(perl_tls_reverse => "hello over tls");
print "foreground: ", (defined $res ? $$res : "undef"), "\n";
my $ts = $c->new_task_set;
my %got;
for my $i (1 .. 5) {
    $ts->add_task(perl_tls_reverse => "job$i", { on_complete => sub { $got{$i} = ${ $_[0] } } });
}
$ts->wait;
print "taskset: ", join(",", map { $got{$_} // "undef" } 1 .. 5), "\n";
my $handle = $c->dispatch_background(perl_tls_nobody => "later");
print "background: ", (defined $handle ? "handle" : "undef"), "\n";
