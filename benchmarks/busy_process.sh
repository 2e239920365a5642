# Sourced by the load benchmarks: one competing busy process (a single-threaded spin loop, like
# another user's job on a shared machine). start_load same|own starts it in the caller's
# session or in one of its own (with the kernel's autogroup scheduling, sessions then share the
# CPU equally); stop_load ends it, also on exit. Needs $py (a python3).
spinner=""
start_load() {
  if [[ $1 == own ]]; then setsid "$py" -c 'while True: pass' & else "$py" -c 'while True: pass' & fi
  spinner=$!
  sleep 1
}
stop_load() {  # (wait reports the spinner's SIGTERM as status 143: not a failure here)
  if [[ -n $spinner ]]; then kill "$spinner" 2>/dev/null || true; wait "$spinner" 2>/dev/null || true; fi
  spinner=""
}
trap stop_load EXIT
