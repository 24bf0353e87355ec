#!/usr/bin/env bash
# Installs what building and testing Paddock needs on Debian 12 (run as root).
set -euo pipefail
packages=(
  g++ cmake ninja-build pkg-config      # toolchain
  libseccomp-dev                        # seccomp profiles
  nlohmann-json3-dev                    # JSON (agent protocol, APIs)
  libsqlite3-dev                        # the embedded store
  libboost-dev                          # Boost.Asio/Beast (HTTP)
  libspdlog-dev                         # paddockd's logs
  libcli11-dev                          # command lines
  libarchive-dev                        # tar upload and download, image layers
  libcurl4-openssl-dev libssl-dev       # the registry client (HTTP, TLS), sha256
  docker-registry skopeo umoci zstd     # image tests: a real registry, pushes, a reference unpack
  python3-jwt python3-cryptography      # image tests: the registry's token service
  apache2-utils                         # image tests: htpasswd for the registry's Basic auth
  mmdebstrap                            # image tests: a real Debian root filesystem
  libnl-route-3-dev                     # netlink: bridge, veths, addresses, routes
  libnftables-dev                       # the firewall and NAT table
  libnetfilter-conntrack-dev            # forgetting a recycled address's tracked connections
  curl                                  # the README's API examples
  libgtest-dev                          # tests
  clang libclang-rt-dev                 # fuzzing: libFuzzer, ASan and UBSan (scripts/fuzz.sh)
  busybox-static                        # the built-in busybox template
  python3 coreutils procps              # programs the tests run inside sandboxes
  runc                                  # the peer measured by bench/runtime_bench
  btrfs-progs                           # mkfs.btrfs: the disk pool (disk limits as btrfs quota groups)
  libyaml-cpp-dev                       # CDI device specs in YAML
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
