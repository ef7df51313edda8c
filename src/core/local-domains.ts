// Which addresses are ours (config `localDomains`): pure, shared by the inbound session (RCPT
// checks), the config's postmaster check and the local drop courier.

/** The shape of config `localDomains` (core/ does not import the config module). */
export type LocalDomains = Readonly<Record<string, { readonly recipients: readonly string[]; readonly catchAll?: string | undefined }>>;

/**
 * The mailbox a local address is delivered to: its own when listed in `recipients`, else the
 * domain's `catchAll`; undefined when the recipient is unknown (refuse: 550 5.1.1). Undefined
 * also for a domain that is not local.
 */
export function localMailbox(localDomains: LocalDomains, address: string): string | undefined {
  const at = address.lastIndexOf("@");
  if (at < 0) return undefined;
  const dom = localDomains[address.slice(at + 1).toLowerCase()];
  if (!dom) return undefined;
  const local = address.slice(0, at).toLowerCase();
  return dom.recipients.includes(local) ? local : dom.catchAll;
}

export function isLocalDomain(localDomains: LocalDomains, domain: string): boolean {
  return Object.hasOwn(localDomains, domain.toLowerCase());
}
