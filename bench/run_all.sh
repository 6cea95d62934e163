#!/usr/bin/env bash
# Every scenario at the sizes of bench/README.md's results, then the plot, the profiles and
# the README tables. About 30 minutes on 2 cores. Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}

# fan-out: 10/100/1000 viewers at 100 and 1000 chunks/s on one process, and across two
$py -m bench.fanout --viewers 10,100,1000 --rate 100,1000 --mode embedded --no-plot
$py -m bench.fanout --viewers 10,100,1000 --rate 100 --mode distributed --no-plot
# the target sizes again, 3 runs each, keeping the least disturbed one
$py -m bench.fanout --viewers 100 --rate 100,1000 --mode embedded,distributed --repeat 3 --no-plot
# the lean client, to see what the websockets client's CPU costs the measurement
$py -m bench.fanout --viewers 100 --rate 100,1000 --client raw --no-plot
$py -m bench.fanout --viewers 1000 --rate 100 --client raw --impl ours,baseline,floor
$py -m bench.many_sessions --mode embedded,distributed
$py -m bench.turn
$py -m bench.turn --gap 0
$py -m bench.seed
$py -m bench.sockets
# a crowd: every socket a viewer of one session (presence merged, channels/presence.py)
$py -m bench.sockets --levels 2000 --per-session 2000
# viewers of one session with a 50-entry transcript (what a socket keeps after its snapshot)
$py -m bench.sockets --levels 400 --per-session 400 --messages 50 --chars 1000 --impl ours
$py -m bench.transcript
$py -m bench.sdk
$py -m bench.emit
$py -m bench.profile --scenario fanout --viewers 100 --rate 1000 --mode embedded
$py -m bench.profile --scenario fanout --viewers 100 --rate 100 --mode distributed --proc 0
$py -m bench.profile --scenario fanout --viewers 100 --rate 100 --mode distributed --proc 1
$py -m bench.profile --scenario many_sessions --viewers 4 --rate 50 --seconds 4
$py -m bench.profile --scenario many_sessions --viewers 4 --rate 50 --seconds 4 --mode distributed
$py -m bench.profile --scenario turn --mode distributed --seconds 6
$py -m bench.plot
$py -m bench.report
