#!/usr/bin/perl
# Hash-, regex- and string-heavy deterministic Perl workload for goheap's
# real-program tests (output compared with and without goheap).
use strict;
use warnings;

my $seed = 42;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed; }

my @syll = qw(ka lo mi nu pe ra si to vu we xa yo ze qu ish ent ora);
my (%count, %bylen, @lines);
for my $i (1 .. 60000) {
    my $w = join '', map { $syll[rnd() % @syll] } 1 .. (1 + rnd() % 5);
    $count{$w}++;
    push @{ $bylen{ length $w } }, $w;
    push @lines, sprintf("%06d %s %s=%d;", $i, $w, uc($w), rnd() % 1000);
}
my $text = join "\n", @lines;
my $n_ish = () = $text =~ /ish/g;
(my $t2 = $text) =~ s/(\d+) (\w+) (\w+)=(\d+);/$4:$3:$2:$1/g;
my @split = split /[:\n]/, $t2;
my %rev = map { scalar reverse($_) => 1 } keys %count;
my $longest = (sort { length($b) <=> length($a) || $a cmp $b } keys %count)[0];
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 9];
my $joined = '';
$joined .= $_ x 3 for @top;
my $sum = 0;
$sum += $_ for map { scalar @{ $bylen{$_} } } keys %bylen;
my %deep;
for my $i (1 .. 30000) { $deep{ $i % 97 }{ $i % 13 }{ $i % 7 } .= chr(65 + $i % 26); }
my $dl = 0;
for my $a (values %deep) { for my $b (values %$a) { $dl += length($_) for values %$b; } }
my @sorted = sort { $a <=> $b } map { (rnd() % 100000) } 1 .. 200000;

print "distinct $_\n" for scalar(keys %count);
print "ish $n_ish\n";
print "split ", scalar(@split), " first $split[0] last $split[-1]\n";
print "reversed ", scalar(keys %rev), "\n";
print "longest $longest\n";
print "top @top\n";
print "joined ", length($joined), "\n";
print "bylen $sum ", join(',', map { "$_:" . scalar @{ $bylen{$_} } } sort { $a <=> $b } keys %bylen), "\n";
print "deep $dl\n";
print "sorted $sorted[0] $sorted[100000] $sorted[-1]\n";
