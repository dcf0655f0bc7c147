#!/bin/sh
# Usage: embed.sh SYMBOL FILE — writes a C file defining `const char SYMBOL[]`
# with FILE's bytes (text), so data ships inside the binary.
set -eu
sym=$1
file=$2
echo "/* Generated from $file by scripts/embed.sh; do not edit. */"
echo "const char $sym[] ="
# Escape backslashes and quotes, keep tabs visible, one source line per input line.
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/	/\\t/g' -e 's/^/"/' -e 's/$/\\n"/' "$file"
echo ";"
