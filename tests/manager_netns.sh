#!/usr/bin/env bash
# A remote manager over TCP between two network namespaces (issue 13): the server program
# (examples/manager_remote_server.c) in one namespace, listening on its own address only, and clients
# (examples/manager_remote_client.c) in another, the two joined by a veth pair: two machines as far as
# the network can tell. Checks that three clients reach it and see each other's entries, that the
# client namespace's loopback has no server (the traffic really crosses the link), that a wrong key is
# refused, and that a client's --shutdown ends the server with code 0.
#
#   tests/manager_netns.sh SERVER CLIENT
#
# Needs root and ip(8) able to make network namespaces and a veth pair; otherwise it prints
# "skipped: why" and exits 77 (a ctest SKIP). Everything it makes is removed on exit.
set -uo pipefail
server=${1:?usage: manager_netns.sh SERVER CLIENT}
client=${2:?usage: manager_netns.sh SERVER CLIENT}

skip() { echo "skipped: $*"; exit 77; }
fail() { echo "FAILED: $*"; exit 1; }

[[ $(id -u) == 0 ]] || skip "making network namespaces needs root"
command -v ip >/dev/null || skip "no ip(8) here (Debian: iproute2)"

tag="mpr$$"                       # names unique to this run (an interface name has at most 15 bytes)
ns_srv="${tag}srv" ns_cli="${tag}cli"
srv_pid=
cleanup() {
  [[ -n $srv_pid ]] && kill -9 "$srv_pid" 2>/dev/null
  ip netns del "$ns_srv" 2>/dev/null
  ip netns del "$ns_cli" 2>/dev/null
}
trap cleanup EXIT

ip netns add "$ns_srv" 2>/dev/null || skip "ip netns add failed (no CAP_SYS_ADMIN, or no network namespaces here)"
ip netns add "$ns_cli" 2>/dev/null || skip "ip netns add failed for a second namespace"
ip link add "${tag}s" netns "$ns_srv" type veth peer name "${tag}c" netns "$ns_cli" 2>/dev/null ||
  skip "no veth pair between namespaces here"
ip -n "$ns_srv" addr add 10.231.7.1/24 dev "${tag}s" && ip -n "$ns_srv" link set "${tag}s" up &&
  ip -n "$ns_srv" link set lo up &&
  ip -n "$ns_cli" addr add 10.231.7.2/24 dev "${tag}c" && ip -n "$ns_cli" link set "${tag}c" up &&
  ip -n "$ns_cli" link set lo up || fail "could not configure the veth pair"

key="netns key $$ $RANDOM" # the programs read it from their stdin

# The server, on its namespace's address (port 0: it picks one and says which on its first line).
coproc SRV { exec ip netns exec "$ns_srv" "$server" 10.231.7.1:0 2>&1 <<<"$key"; }
srv_pid=$SRV_PID
exec {srv_out}<&"${SRV[0]}" # bash forgets SRV once the server has ended: keep its output
read -r -t 30 first <&"$srv_out" || fail "the server said nothing within 30 s"
echo "server: $first"
[[ $first =~ ^listening\ on\ (10\.231\.7\.1:[0-9]+)$ ]] || fail "unexpected first line from the server: $first"
address=${BASH_REMATCH[1]}
port=${address##*:}

in_cli() { ip netns exec "$ns_cli" "$@" <<<"$key"; }

out=$(in_cli "$client" "$address" 2>&1) || fail "client 1: $out"
echo "$out"
[[ $out == *"I am visitor 1;"* ]] || fail "client 1 was not visitor 1"
out=$(in_cli "$client" "$address" 2>&1) || fail "client 2: $out"
echo "$out"
[[ $out == *"I am visitor 2;"* && $out == *"visitor 1=client "* ]] || fail "client 2 did not see client 1's entry"

# Nothing listens on the client namespace's own loopback: the clients above crossed the link.
if out=$(in_cli "$client" "127.0.0.1:$port" 2>&1); then fail "a client reached 127.0.0.1:$port in its own namespace"; fi
echo "loopback of the client namespace (expected to fail): $out"

# A wrong key is refused, and the server goes on serving.
if out=$(ip netns exec "$ns_cli" "$client" "$address" <<<"not the key" 2>&1); then fail "a wrong key was accepted"; fi
echo "wrong key (expected to fail): $out"
[[ $out == *uthenticat* || $out == *key* || $out == *FAILURE* ]] || fail "a wrong key failed without saying why: $out"

out=$(in_cli "$client" "$address" --shutdown 2>&1) || fail "client 3: $out"
echo "$out"
[[ $out == *"I am visitor 3;"* && $out == *"visitor 2=client "* ]] || fail "client 3 did not see the others"

# The server ends on its own after the shutdown, with code 0.
rest=$(timeout 30 cat <&"$srv_out")
echo "server: $rest"
wait "$srv_pid"
code=$?
srv_pid=
[[ $code == 0 ]] || fail "the server ended with code $code"
[[ $rest == *"shut down by a client"* ]] || fail "the server did not say it was shut down"
echo "manager over TCP between two network namespaces: ok"
