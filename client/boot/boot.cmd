# A/B slot selection with trial boots for U-Boot (hush shell), the boot-loader half of
# ota-client's boot control. The contract is in client/BOOT.md. Compile it into the image
# U-Boot's `source` command runs:
#
#     mkimage -A arm -T script -C none -d boot.cmd boot.scr
#
# Variables (the ones of U-Boot's CONFIG_BOOTCOUNT_LIMIT, in the saved environment):
#   ota_slot           a or b: the slot to boot
#   upgrade_available  1 while a trial boot of ota_slot is pending (ota-client mark-good clears it)
#   bootcount          trial boots so far (0 to 9)
#   bootlimit          trial boots allowed, 1 to 9 (default 3)
#
# The rule: when upgrade_available=1, count this boot; if the count would exceed bootlimit,
# fall back to the other slot with upgrade_available=0 and bootcount=0. Then boot ota_slot.
# A new slot that never gets marked good is booted bootlimit times; boot bootlimit+1 runs
# the old slot. The environment is saved only when upgrade_available=1 (no flash writes on
# normal boots).
#
# Do not combine with U-Boot's own CONFIG_BOOTCOUNT_LIMIT + CONFIG_BOOTCOUNT_ENV, which
# would count each boot a second time (see client/BOOT.md for that variant).

# ---- Defaults for unset or invalid variables (in memory; saved only below) ----
if test "${ota_slot}" != "b"; then setenv ota_slot a; fi
setenv ota_limit 3
if test "${bootlimit}" = "1"; then setenv ota_limit 1; fi
if test "${bootlimit}" = "2"; then setenv ota_limit 2; fi
if test "${bootlimit}" = "3"; then setenv ota_limit 3; fi
if test "${bootlimit}" = "4"; then setenv ota_limit 4; fi
if test "${bootlimit}" = "5"; then setenv ota_limit 5; fi
if test "${bootlimit}" = "6"; then setenv ota_limit 6; fi
if test "${bootlimit}" = "7"; then setenv ota_limit 7; fi
if test "${bootlimit}" = "8"; then setenv ota_limit 8; fi
if test "${bootlimit}" = "9"; then setenv ota_limit 9; fi

# ---- Count a trial boot, or fall back ----
# bootcount + 1 without setexpr (which is hexadecimal, and not on every board); any other
# bootcount (garbage, or 9 and more) counts as exhausted.
if test "${upgrade_available}" = "1"; then
    setenv ota_next
    if test "${bootcount}" = "0"; then setenv ota_next 1; fi
    if test "${bootcount}" = "1"; then setenv ota_next 2; fi
    if test "${bootcount}" = "2"; then setenv ota_next 3; fi
    if test "${bootcount}" = "3"; then setenv ota_next 4; fi
    if test "${bootcount}" = "4"; then setenv ota_next 5; fi
    if test "${bootcount}" = "5"; then setenv ota_next 6; fi
    if test "${bootcount}" = "6"; then setenv ota_next 7; fi
    if test "${bootcount}" = "7"; then setenv ota_next 8; fi
    if test "${bootcount}" = "8"; then setenv ota_next 9; fi
    setenv ota_trial 0
    if test -n "${ota_next}"; then
        if test "${ota_next}" -le "${ota_limit}"; then setenv ota_trial 1; fi
    fi
    if test "${ota_trial}" = "1"; then
        echo "ota: trial boot ${ota_next} of ${ota_limit} of slot ${ota_slot}"
        setenv bootcount "${ota_next}"
    else
        echo "ota: slot ${ota_slot} was not marked good within ${ota_limit} boots, falling back"
        if test "${ota_slot}" = "b"; then setenv ota_slot a; else setenv ota_slot b; fi
        setenv upgrade_available 0
        setenv bootcount 0
    fi
    # Helpers are not saved.
    setenv ota_next
    setenv ota_trial
    setenv ota_limit
    saveenv
fi
setenv ota_limit

# ---- Board-specific: how to boot slot a / slot b (replace these placeholders) ----
# Here: slot a is partition 2 and slot b partition 3 of mmc 0, each holding /boot/zImage and
# the device tree; the kernel learns its slot from ota.slot= on its command line.
setenv ota_part_a 2
setenv ota_part_b 3
if test "${ota_slot}" = "b"; then setenv ota_part ${ota_part_b}; else setenv ota_part ${ota_part_a}; fi
echo "ota: booting slot ${ota_slot} (mmc 0:${ota_part})"
setenv bootargs "${bootargs} root=/dev/mmcblk0p${ota_part} rootwait ota.slot=${ota_slot}"
if load mmc 0:${ota_part} ${kernel_addr_r} /boot/zImage; then
    if load mmc 0:${ota_part} ${fdt_addr_r} /boot/${fdtfile}; then
        bootz ${kernel_addr_r} - ${fdt_addr_r}
    fi
fi

# The slot did not boot. Reset: during a trial the next boot counts another attempt, so a
# broken new slot ends in the fallback.
echo "ota: booting slot ${ota_slot} failed, resetting"
reset
