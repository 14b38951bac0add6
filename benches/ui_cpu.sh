#!/usr/bin/env bash
# The app's own CPU use in a real window under Xvfb: idle with no run, and while watching
# sleep20 (20 × sleep 1 on 5 workers). Run from the repository root:
#   bash benches/ui_cpu.sh
# Needs xvfb, xdotool and Mesa (apt-get install -y xvfb xdotool libgl1-mesa-dri libglx-mesa0).
# Under Xvfb, Mesa draws in software (llvmpipe), so every frame costs CPU that a GPU would
# take off it: the figures are an upper bound.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${POOLSCOPE:-target/release/poolscope}
[ -x "$bin" ] || cargo build --release
work=$(mktemp -d)
trap 'kill $app $xvfb 2>/dev/null || true; rm -rf "$work"' EXIT
cp -r assets/examples/sleep20 "$work/sleep20"
display=:$((100 + RANDOM % 400))
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & xvfb=$!
sleep 1
DISPLAY=$display XDG_DATA_HOME=$work "$bin" "$work/sleep20" >/dev/null 2>&1 & app=$!
sleep 3
ticks() { awk '{print $14 + $15}' "/proc/$app/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); sleep 5; t1=$(ticks)
idle=$(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.2f", d * 100 / hz / 5 }')
# Press Run (the button at the top left of the pool form) and watch the whole run.
DISPLAY=$display xdotool mousemove 43 561 click 1
t0=$(ticks); sleep 4.5; t1=$(ticks)
watching=$(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.1f", d * 100 / hz / 4.5 }')
t0=$(ticks); sleep 5; t1=$(ticks)
after=$(awk -v d=$((t1 - t0)) -v hz="$hz" 'BEGIN { printf "%.2f", d * 100 / hz / 5 }')
echo "| state | app CPU, % of one core |"
echo "|---|---:|"
echo "| idle, no run (5 s) | $idle |"
echo "| watching sleep20 (4.5 s) | $watching |"
echo "| idle after the run (5 s) | $after |"
