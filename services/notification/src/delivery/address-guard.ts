import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * Where a rest-hook may not point: the service's own machine and the networks behind it (server-side request
 * forgery). A subscriber names a URL and the service POSTs to it from inside the network, so without this a
 * client could make it call the database's host, the cloud metadata service (169.254.169.254) or an admin port.
 */
const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network", and the unspecified address
  ['10.0.0.0', 8], // RFC 1918
  ['100.64.0.0', 10], // shared address space (RFC 6598, carrier-grade NAT): private in practice
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, with the cloud metadata services
  ['172.16.0.0', 12], // RFC 1918
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16], // RFC 1918
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and the broadcast address
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['fc00::', 7], // unique local (the IPv6 private range)
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated, still routed by some)
  ['ff00::', 8], // multicast
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
}
// IPv4-mapped addresses (::ffff:a.b.c.d) are checked against the IPv4 rules by BlockList itself; NAT64
// (64:ff9b::/96) embeds an IPv4 address too, checked below.

/** The 32 bits at the end of an IPv6 address (valid, as isIP said), as dotted IPv4: the address NAT64 stands for. */
function tailAsIPv4(v6: string): string {
  let s = v6.toLowerCase();
  const dotted = /^(.*:)(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (dotted) s = `${dotted[1]}${((Number(dotted[2]) << 8) | Number(dotted[3])).toString(16)}:${((Number(dotted[4]) << 8) | Number(dotted[5])).toString(16)}`;
  const [head = '', tail] = s.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const hi = parseInt(groups[6] ?? '0', 16);
  const lo = parseInt(groups[7] ?? '0', 16);
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

/** Whether an IP address (v4 or v6, without brackets) is one a hook may not reach. Anything not an IP address is refused. */
export function isForbiddenAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family === 6) {
    if (blocked.check(address, 'ipv6')) return true;
    if (/^64:ff9b::/i.test(address)) {
      return blocked.check(tailAsIPv4(address), 'ipv4');
    }
    return false;
  }
  return true;
}

/** A URL's host as an IP address, when it is one (the WHATWG parser has already turned 0x7f.1 and 2130706433 into 127.0.0.1). */
export function ipLiteralOf(hostname: string): string | undefined {
  const h = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  return isIP(h) ? h : undefined;
}

/** Names that are the local machine whatever DNS says (RFC 6761), refused without asking DNS. */
export const isLocalName = (hostname: string): boolean => /(^|\.)localhost\.?$/i.test(hostname) || hostname === '';

/**
 * Why an endpoint's host may not be used, judged from the URL alone (an IP address, or a localhost name), or
 * undefined. A name is judged again when the notification is sent, after DNS (see `guardedLookup`).
 */
export function forbiddenHost(hostname: string): string | undefined {
  const ip = ipLiteralOf(hostname);
  if (ip !== undefined) return isForbiddenAddress(ip) ? 'its address is on a loopback, private, link-local, multicast or unspecified network' : undefined;
  if (isLocalName(hostname)) return 'it names the local machine';
  return undefined;
}

export class ForbiddenAddressError extends Error {
  readonly code = 'EFORBIDDENADDRESS';
  constructor() {
    // The address itself is not said: Subscription.error is shown to the client, which would learn how internal names resolve.
    super('the endpoint resolves to a loopback, private, link-local, multicast or unspecified address (refused)');
    this.name = 'ForbiddenAddressError';
  }
}

/**
 * A `lookup` for node:http that resolves as usual and refuses the connection when any address the name
 * resolves to is forbidden. The connection is made to the address checked here (no second resolution a
 * rebinding DNS server could answer differently).
 */
export const guardedLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) {
      callback(err, '', 0);
      return;
    }
    if (addresses.length === 0 || addresses.some((a) => isForbiddenAddress(a.address))) {
      callback(new ForbiddenAddressError(), '', 0);
      return;
    }
    if (options.all) callback(null, addresses);
    else callback(null, addresses[0]!.address, addresses[0]!.family);
  });
};
