#!/bin/sh
# Captures real strongSwan 5.9.8 IKEv2 exchanges for the recorded-packet tests.
#
# Two charons (kernel-libipsec, PSK) in two throw-away network namespaces joined by a veth pair,
# logging ike=4 so the SK_* keys are printed; tcpdump records the UDP datagrams. The result goes to
# $OUT/<suite>.{pcap,log}; test/recorded/ike/extract.mjs turns them into the committed JSON fixtures.
#
# usage: sh capture.sh OUTDIR SUITE IKE_PROPOSALS ESP_PROPOSALS [rekey]  (run as root; cleans up after itself)
# With "rekey", the initiator also rekeys the child SA (PFS if ESP_PROPOSALS has a DH group) and
# then the IKE SA, before deleting.
# RESP_IKEP (environment) gives the responder other IKE proposals, e.g. to provoke INVALID_KE_PAYLOAD.
set -eu
OUT=$1; SUITE=$2; IKEP=$3; ESPP=$4; REKEY=${5:-}
RESP_IKEP=${RESP_IKEP:-$IKEP}
A=ikwA$$; B=ikwB$$
W=$(mktemp -d /tmp/ikw.XXXXXX)
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT INT TERM
ip netns add "$A"; ip netns add "$B"
ip link add ikwa$$ netns "$A" type veth peer name ikwb$$ netns "$B"
ip -n "$A" addr add 192.0.2.1/24 dev ikwa$$; ip -n "$A" link set ikwa$$ up; ip -n "$A" link set lo up
ip -n "$B" addr add 192.0.2.2/24 dev ikwb$$; ip -n "$B" link set ikwb$$ up; ip -n "$B" link set lo up
ip -n "$A" addr add 10.1.0.1/32 dev lo; ip -n "$B" addr add 10.2.0.1/32 dev lo

mkconf() { # dir localaddr remoteaddr localid remoteid localts remotets ikeproposals
  mkdir -p "$1"
  cat > "$1/strongswan.conf" <<EOC
charon {
  load = kernel-libipsec kernel-netlink socket-default vici openssl nonce random pem x509 pubkey pkcs1 pkcs8 curve25519 hmac gcm aes sha1 sha2 kdf
  retransmit_tries = 2
  plugins {
    vici {
      socket = unix://$1/charon.vici
    }
  }
  filelog {
    lab {
      path = $1/charon.log
      append = no
      flush_line = yes
      default = 1
      ike = 4
      chd = 4
      enc = 1
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
}
EOC
  cat > "$1/swanctl.conf" <<EOC
connections {
  lab {
    version = 2
    local_addrs = $2
    remote_addrs = $3
    proposals = $8
    encap = yes
    local {
      auth = psk
      id = $4
    }
    remote {
      auth = psk
      id = $5
    }
    children {
      net {
        local_ts = $6
        remote_ts = $7
        esp_proposals = $ESPP
        start_action = none
      }
    }
  }
}
secrets {
  ike-lab {
    id-a = $4
    id-b = $5
    secret = "interop-test-psk-0123456789"
  }
}
EOC
}
mkconf "$W/a" 192.0.2.1 192.0.2.2 a@example.org b.example.org 10.1.0.0/16 10.2.0.0/16 "$IKEP"
mkconf "$W/b" 192.0.2.2 192.0.2.1 b.example.org a@example.org 10.2.0.0/16 10.1.0.0/16 "$RESP_IKEP"

ip netns exec "$A" tcpdump -i ikwa$$ -U -s 0 -w "$W/cap.pcap" udp 2>/dev/null &
PIDS="$PIDS $!"
for n in a b; do
  NS=$A; [ $n = b ] && NS=$B
  STRONGSWAN_CONF=$W/$n/strongswan.conf ip netns exec "$NS" unshare -m sh -c "mount -t tmpfs none /run && exec /usr/lib/ipsec/charon" >/dev/null 2>&1 &
  PIDS="$PIDS $!"
done
i=0; while [ ! -S "$W/a/charon.vici" ] || [ ! -S "$W/b/charon.vici" ]; do i=$((i+1)); [ $i -gt 50 ] && exit 1; sleep 0.1; done
swanctl --load-all --file "$W/a/swanctl.conf" --uri "unix://$W/a/charon.vici" >/dev/null
swanctl --load-all --file "$W/b/swanctl.conf" --uri "unix://$W/b/charon.vici" >/dev/null
timeout 20 swanctl --initiate --child net --uri "unix://$W/a/charon.vici" >/dev/null
if [ "$REKEY" = rekey ]; then
  timeout 20 swanctl --rekey --child net --uri "unix://$W/a/charon.vici" >/dev/null
  sleep 1
  timeout 20 swanctl --rekey --ike lab --uri "unix://$W/b/charon.vici" >/dev/null
  sleep 1
fi
# one INFORMATIONAL (delete) as well
timeout 20 swanctl --terminate --ike lab --uri "unix://$W/a/charon.vici" >/dev/null || true
sleep 1
mkdir -p "$OUT"
cp "$W/cap.pcap" "$OUT/$SUITE.pcap"
cp "$W/a/charon.log" "$OUT/$SUITE.log"
