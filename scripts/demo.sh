#!/usr/bin/env bash
# Set up (if needed) and run the main job on the shipped data: bash scripts/demo.sh [options]
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec seispinn demo "$@"
