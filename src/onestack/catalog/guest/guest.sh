# onestack test image: the guest's boot, as shell functions (busybox ash).
#
# /init sources this file and calls boot. Nothing runs when it is sourced, so the
# parsing functions can be tested on any POSIX shell with sed, grep and awk.
# Everything the operator needs to follow a boot goes to the console with the
# prefix "onestack-guest:", because the console log is all nova shows.

GUEST_STATE=/run/onestack-guest
METADATA_URL=http://169.254.169.254
CONFIG_DRIVE_LABEL=config-2

say() {
    echo "onestack-guest: $*"
}

# --- metadata parsing (pure: stdin to stdout) --------------------------------

# Public SSH keys found in a meta_data.json or an EC2 openssh-key file, one per line,
# without comments, each once, in order. A key is "type base64" on one line; JSON
# may escape "/" as "\/", which is undone first.
ssh_keys_in() {
    sed 's#\\/#/#g' \
        | grep -oE '(ssh-(rsa|dss|ed25519)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}' \
        | awk '!seen[$0]++'
}

# The value of a top-level string field of a one-line JSON object: json_string NAME.
# Values with escaped quotes are not supported (none of the fields read here has one).
json_string() {
    sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -n 1
}

# A hostname as the kernel accepts it: letters, digits, '-' and '.', at most 63.
clean_hostname() {
    tr -cd 'A-Za-z0-9.-' | cut -c 1-63
}

# The static IPv4 configuration nova wrote in a network_data.json (stdin) for the
# NIC with MAC $1: lines "address A.B.C.D/LEN", "mtu N" and "route DEST/LEN GATEWAY".
# The JSON is cut into its objects ({...} on a line each), which nova writes with
# the link's id before the network's fields and a network's routes after it.
static_ipv4_for() {
    tr '{}' '\n\n' | awk -v mac="$1" '
        function field(name,   found) {
            if (!match($0, "\"" name "\": *\"[^\"]*\"")) return ""
            found = substr($0, RSTART, RLENGTH)
            sub(/^"[^"]*": *"/, "", found)
            sub(/"$/, "", found)
            return found
        }
        function prefix(mask,   octets, bits, i, v) {
            split(mask, octets, ".")
            for (i = 1; i <= 4; i++)
                for (v = octets[i]; v > 0; v = int(v / 2)) bits += v % 2
            return bits + 0
        }
        { line[NR] = $0 }
        tolower(field("ethernet_mac_address")) == tolower(mac) {
            link = field("id")
            if (match($0, /"mtu": *[0-9]+/)) { mtu = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", mtu) }
        }
        END {
            if (link == "") exit
            for (i = 1; i <= NR; i++) {
                $0 = line[i]
                if (field("link") != "") {
                    mine = field("link") == link && field("type") == "ipv4" && field("ip_address") != ""
                    if (mine) print "address " field("ip_address") "/" prefix(field("netmask"))
                    if (mine && mtu != "") print "mtu " mtu
                } else if (mine && field("gateway") != "") {
                    print "route " field("network") "/" prefix(field("netmask")) " " field("gateway")
                }
            }
        }'
}

# --- boot steps ----------------------------------------------------------------

mount_kernel_filesystems() {
    mkdir -p /proc /sys /dev /run /tmp /var
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev 2>/dev/null
    mkdir -p /dev/pts /dev/shm
    mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
    ln -sfn /run /var/run
    mkdir -p "$GUEST_STATE" /var/log
}

# insmod in the order the image builder computed (dependencies first): busybox
# modprobe would need modules.dep, which only depmod on the build host could write.
load_modules() {
    loaded=0
    while read -r module; do
        [ -n "$module" ] || continue
        if insmod "/lib/modules/$(uname -r)/$module" 2>/dev/null; then
            loaded=$((loaded + 1))
        fi
    done < /lib/onestack/modules.order
    say "loaded $loaded kernel modules"
}

wait_for_interface() {
    tries=0
    while [ ! -e "/sys/class/net/$1" ] && [ "$tries" -lt 20 ]; do
        sleep 0.25
        tries=$((tries + 1))
    done
    [ -e "/sys/class/net/$1" ]
}

# DHCP on eth0, a few rounds: the DHCP agent may answer late on a busy network node.
# udhcpc stays in the background after the lease to renew it.
bring_up_network() {
    ip link set lo up
    if ! wait_for_interface eth0; then
        say "no eth0: no network"
        return 1
    fi
    ip link set eth0 up
    for round in 1 2 3 4; do
        if udhcpc -i eth0 -s /lib/onestack/udhcpc.script -t 5 -T 2 -A 1 -n \
                -p /var/run/udhcpc.eth0.pid -O staticroutes -O mtu -x hostname:onestack-guest >/dev/null 2>&1; then
            say "dhcp ok $(cat "$GUEST_STATE/ip" 2>/dev/null) on eth0"
            return 0
        fi
        say "dhcp on eth0: no answer (round $round)"
        # A subnet without DHCP: the address nova wrote on the config drive.
        if [ "$round" = 1 ] && read_config_drive && configure_static_network; then
            return 0
        fi
    done
    say "dhcp failed on eth0"
    return 1
}

# Copy a config drive's openstack/latest to $GUEST_STATE/metadata. The drive is
# cheap to read and present only when nova put it there, so it is tried first.
read_config_drive() {
    [ ! -f "$GUEST_STATE/config-drive" ] || return 0
    device=$(findfs "LABEL=$CONFIG_DRIVE_LABEL" 2>/dev/null) || return 1
    mkdir -p /mnt/config
    for fstype in iso9660 vfat; do
        if mount -t "$fstype" -o ro "$device" /mnt/config 2>/dev/null; then
            mkdir -p "$GUEST_STATE/metadata"
            for name in meta_data.json network_data.json user_data; do
                if [ -f "/mnt/config/openstack/latest/$name" ]; then
                    cp "/mnt/config/openstack/latest/$name" "$GUEST_STATE/metadata/$name"
                fi
            done
            umount /mnt/config
            echo "$device" > "$GUEST_STATE/config-drive"
            say "metadata from config drive $device"
            return 0
        fi
    done
    return 1
}

# busybox 1.35's static wget crashes with -T (and with -O -): bounded by timeout.
fetch() {
    timeout 5 wget -q -O "$2" "$METADATA_URL$1" 2>/dev/null
}

# The metadata service, retried: its proxy may not answer at once after boot.
read_metadata_service() {
    out="$GUEST_STATE/metadata"
    mkdir -p "$out"
    for attempt in 1 2 3 4 5 6; do
        if fetch /openstack/latest/meta_data.json "$out/meta_data.json"; then
            fetch /openstack/latest/user_data "$out/user_data" || rm -f "$out/user_data"
            fetch /latest/meta-data/public-keys/0/openssh-key "$out/openssh-key" \
                || rm -f "$out/openssh-key"
            say "metadata from $METADATA_URL"
            return 0
        fi
        sleep "$attempt"
    done
    rm -f "$out/meta_data.json"
    say "metadata service $METADATA_URL did not answer"
    return 1
}

# eth0's static address, MTU and routes from the config drive's network_data.json.
configure_static_network() {
    config=$(static_ipv4_for "$(cat /sys/class/net/eth0/address)" \
        < "$GUEST_STATE/metadata/network_data.json" 2>/dev/null)
    address=$(echo "$config" | sed -n 's/^address //p' | head -n 1)
    [ -n "$address" ] || return 1
    ip -4 addr flush dev eth0
    ip addr add "$address" dev eth0
    mtu=$(echo "$config" | sed -n 's/^mtu //p' | head -n 1)
    [ -z "$mtu" ] || ip link set eth0 mtu "$mtu"
    echo "$config" | sed -n 's/^route //p' | while read -r destination gateway; do
        ip route replace "$destination" via "$gateway" dev eth0
    done
    echo "${address%/*}" > "$GUEST_STATE/ip"
    say "static address $address on eth0 (network_data.json)"
}

install_keys() {
    metadata="$GUEST_STATE/metadata"
    mkdir -p /root/.ssh
    chmod 700 /root /root/.ssh
    cat "$metadata/meta_data.json" "$metadata/openssh-key" 2>/dev/null \
        | ssh_keys_in > /root/.ssh/authorized_keys
    chmod 600 /root/.ssh/authorized_keys
    say "$(wc -l < /root/.ssh/authorized_keys) ssh keys for root"
}

apply_metadata() {
    metadata="$GUEST_STATE/metadata/meta_data.json"
    [ -f "$metadata" ] || return 0
    uuid=$(json_string uuid < "$metadata")
    [ -z "$uuid" ] || say "instance $uuid"
    # nova's hostname is "<name>.<dhcp_domain>": the host name is its first label
    # (as cloud-init sets it), the whole is the FQDN in /etc/hosts.
    fqdn=$(json_string hostname < "$metadata" | clean_hostname)
    [ -n "$fqdn" ] || fqdn=$(json_string name < "$metadata" | clean_hostname)
    name=${fqdn%%.*}
    if [ -n "$name" ]; then
        hostname "$name"
        echo "$name" > /etc/hostname
        printf '127.0.0.1 localhost\n127.0.1.1 %s %s\n' "$fqdn" "$name" > /etc/hosts
        say "hostname $name"
    fi
}

# The power button (nova's clean shutdown and soft reboot press it) powers off.
start_acpid() {
    if acpid -c /etc/acpi -l /var/log/acpid.log 2>/dev/null; then
        say "acpid: power button shuts down"
    fi
}

start_ssh() {
    mkdir -p /etc/dropbear
    for type in ed25519 ecdsa; do
        key="/etc/dropbear/dropbear_${type}_host_key"
        [ -f "$key" ] || dropbearkey -t "$type" -f "$key" >/dev/null 2>&1
        say "host key $(dropbearkey -y -f "$key" | sed -n 's/^Fingerprint: //p')"
    done
    # -s: keys only, never a password; -E: log to stderr, kept in /var/log.
    dropbear -s -E -p 22 -P /run/dropbear.pid \
        -r /etc/dropbear/dropbear_ed25519_host_key \
        -r /etc/dropbear/dropbear_ecdsa_host_key 2>>/var/log/dropbear.log
    say "ssh ready"
}

# User data that is a script runs once in the background, after ssh is up: a slow
# or endless script must not keep the operator out.
run_user_data() {
    data="$GUEST_STATE/metadata/user_data"
    [ -f "$data" ] || return 0
    if [ "$(head -c 2 "$data")" != "#!" ]; then
        say "user data is not a script: not run"
        return 0
    fi
    cp "$data" "$GUEST_STATE/user-data"
    chmod 700 "$GUEST_STATE/user-data"
    say "running user data"
    (
        "$GUEST_STATE/user-data" > /var/log/user-data.log 2>&1
        say "user data exit $?"
    ) &
}

boot() {
    export PATH=/sbin:/bin:/usr/sbin:/usr/bin
    mount_kernel_filesystems
    say "booting, kernel $(uname -r)"
    hostname onestack-guest
    load_modules
    start_acpid
    bring_up_network
    read_config_drive || read_metadata_service
    apply_metadata
    install_keys
    start_ssh
    run_user_data
}
