#!/bin/sh
# Stands in for ptxas in moeq-compile-hardware-limits.test: rejects every
# kernel the way ptxas rejects one over the parameter limit.
echo "ptxas error   : Entry function 'k' uses too much parameter space (0x181c bytes, 0x1100 max)." >&2
exit 255
