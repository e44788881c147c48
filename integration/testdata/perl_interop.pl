#!/usr/bin/perl
# Gearman::Client and Gearman::Worker (libgearman-client-perl, a pure Perl
# implementation) against a job server: perl_interop.pl worker|client PORT.
# The client prints one line per event, without job handles, for the test
# to compare with what it wants.
use strict;
use warnings;
use Gearman::Client;
use Gearman::Worker;

my ($mode, $port) = @ARGV;
my $server = "127.0.0.1:$port";
$| = 1;

if ($mode eq "worker") {
    my $w = Gearman::Worker->new(job_servers => [$server]);
    $w->prefix(undef);
    # With a timeout the worker registers with CAN_DO_TIMEOUT (seconds).
    $w->register_function(perl_reverse => 30, sub {
        my $job = shift;
        $job->set_status(1, 2);
        return scalar reverse $job->arg;
    });
    # A handler that dies: the worker sends WORK_EXCEPTION, then WORK_FAIL.
    $w->register_function(perl_die => sub { die "boom\n" });
    # Returning undef sends WORK_FAIL.
    $w->register_function(perl_fail => sub { return undef });
    # Data and a warning on the way to the result.
    $w->register_function(perl_data => sub {
        my $job = shift;
        $w->send_work_data($job, "d1");
        $w->send_work_warning($job, "w1");
        return "done";
    });
    # Slower than its CAN_DO_TIMEOUT of 1 s the first time: the server
    # takes the job back, and the late WORK_COMPLETE must not get the ERROR
    # on which this worker dies. The second run is quick.
    my $slow_once = 1;
    $w->register_function(perl_slow => 1, sub {
        if ($slow_once) {
            $slow_once = 0;
            select(undef, undef, undef, 2.5);
            return "late";
        }
        return "second run";
    });
    $w->work while 1;
}

my $c = Gearman::Client->new(job_servers => [$server]);

my @status;
my $res = $c->do_task(perl_reverse => "hello",
    { on_status => sub { push @status, "$_[0]/$_[1]" } });
print "foreground: ", (defined $res ? $$res : "undef"), " status: @status\n";

$res = $c->do_task(perl_fail => "x");
print "fail: ", (defined $res ? $$res : "undef"), "\n";

my $fail_reason = "none";
$res = $c->do_task(perl_die => "x", { on_fail => sub { $fail_reason = "on_fail" } });
print "die: ", (defined $res ? $$res : "undef"), " $fail_reason\n";

# Ten tasks at once, on one connection.
my $ts = $c->new_task_set;
my %got;
for my $i (1 .. 10) {
    $ts->add_task(perl_reverse => "job$i", { on_complete => sub { $got{$i} = ${ $_[0] } } });
}
$ts->wait(timeout => 20);
print "taskset: ", join(",", map { $got{$_} // "missing" } 1 .. 10), "\n";

# A background job for a function nobody does stays queued and known.
my $handle = $c->dispatch_background(perl_nobody => "later", { uniq => "perl-u1" });
print "background: ", (defined $handle ? "handle" : "undef"), "\n";
my $st = $c->get_status($handle);
printf "status: known=%d running=%d\n", $st->known ? 1 : 0, $st->running ? 1 : 0;
# The same unique ID gives the same job.
my $again = $c->dispatch_background(perl_nobody => "later", { uniq => "perl-u1" });
print "coalesced: ", ($again eq $handle ? "same" : "different"), "\n";

# Background jobs with no unique ID (Perl sends an empty one) are each kept.
$c->dispatch_background(perl_nobody => "empty$_") for 1 .. 3;
my $js = $c->get_job_server_status->{$server}{perl_nobody};
printf "queued: %d running=%d capable=%d\n", $js->{queued}, $js->{running}, $js->{capable};

my @events;
$res = $c->do_task(perl_data => "x", {
    on_data    => sub { push @events, "data ${ $_[0] }" },
    on_warning => sub { push @events, "warning " . (ref $_[0] ? ${ $_[0] } : $_[0]) },
});
print "data: ", join(", ", @events), " result: ", (defined $res ? $$res : "undef"), "\n";

# With the exceptions option the client hears the exception itself.
my $ec = Gearman::Client->new(job_servers => [$server], exceptions => 1);
my $exception = "none";
$res = $ec->do_task(perl_die => "x", { on_exception => sub { $exception = "called" } });
print "exception: $exception result: ", (defined $res ? $$res : "undef"), "\n";

# A job that overruns its CAN_DO_TIMEOUT runs again; the worker, whose late
# result the server drops, lives on to serve the next job.
$res = $c->do_task(perl_slow => "x", { timeout => 20 });
print "timed out: ", (defined $res ? $$res : "undef"), "\n";
$res = $c->do_task(perl_reverse => "alive", { timeout => 20 });
print "after: ", (defined $res ? $$res : "undef"), "\n";
