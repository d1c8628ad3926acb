# Shared by scripts/run and scripts/test: make sure what the build needs is there. As root,
# missing Debian packages are installed; otherwise the exact command to run is printed.

# apt_need PACKAGE… : installs (root) or names the Debian packages that are not installed.
apt_need() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "Installing ${missing[*]}" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
      echo "Missing: ${missing[*]}. Run:" >&2
      echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
      exit 1
    fi
  fi
}

# Rust and the C toolchain for the core, the command line and the relay.
need_build_tools() {
  apt_need build-essential pkg-config python3
  if ! command -v cargo >/dev/null 2>&1; then
    echo "Rust is missing. Install it with rustup (https://rustup.rs), then run this again:" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component rustfmt" >&2
    exit 1
  fi
}

# The app: Tauri's system libraries (WebKitGTK …), a CJK font, Node.js ≥ 20 and the
# front end's npm packages (from package-lock.json).
need_app_tools() {
  need_build_tools
  apt_need libwebkit2gtk-4.1-dev libxdo-dev libssl-dev libayatana-appindicator3-dev librsvg2-dev \
    file curl wget fonts-noto-cjk
  if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    echo "Node.js 20 or later is missing (Debian 12's own nodejs is 18). Install it from" >&2
    echo "https://nodejs.org or NodeSource, then run this again." >&2
    exit 1
  fi
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
  fi
}

# End-to-end tests: a virtual display, WebKit's WebDriver, screenshots; tauri-driver. The
# local-network discovery tests run in a network namespace of their own (unshare, ip), the
# full-disk tests on a small tmpfs in a mount namespace of their own (mount).
need_e2e_tools() {
  apt_need xvfb xauth imagemagick webkit2gtk-driver x11-utils util-linux iproute2 mount
  local tools="$HOME/.cache/linli/tools"
  if [ ! -x "$tools/bin/tauri-driver" ]; then
    CARGO_TARGET_DIR="$tools/target" cargo install tauri-driver@2.1.0 --locked --root "$tools"
  fi
  export TAURI_DRIVER="$tools/bin/tauri-driver"
}
