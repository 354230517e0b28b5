# Sourced by the scenario scripts: free_port prints a loopback TCP port
# nothing listens on, so that a scenario does not fail because a fixed
# port is taken by something else on the machine.
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free port found" >&2
  exit 1
}
