#!/usr/bin/env bash
# The steps docker-mailserver's `setup email add ADDR PW` performs, per account
# (target/scripts/helpers/database/*: lock, existence checks with grep, one
# `doveadm pw -s SHA512-CRYPT` hash, append the line), as a fresh process per call.
# Written for the benchmark from the documented behaviour; not their code.
set -euo pipefail
DIR=$1 ADDR=${2,,} PW=$3
ACCOUNTS=$DIR/postfix-accounts.cf VIRTUAL=$DIR/postfix-virtual.cf
exec 9>"$DIR/.setup.lock"
flock 9
touch "$ACCOUNTS"
KEY=${ADDR//./\\.}
if grep -q -i "^${KEY}|" "$ACCOUNTS"; then echo "'$ADDR' already exists" >&2; exit 1; fi
if [[ -f $VIRTUAL ]] && grep -q "^${KEY}" "$VIRTUAL"; then
  echo "'$ADDR' is already defined as an alias" >&2; exit 1
fi
HASH=$(doveadm pw -s SHA512-CRYPT -u "$ADDR" -p "$PW")
echo "${ADDR}|${HASH}" >>"$ACCOUNTS"
