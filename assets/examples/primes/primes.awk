# Count the primes below ARGV[1] by trial division: a CPU-bound kernel.
BEGIN { n = ARGV[1]; c = 0; for (i = 2; i <= n; i++) { p = 1; for (d = 2; d * d <= i; d++) if (i % d == 0) { p = 0; break } c += p } print c " primes below " n }
