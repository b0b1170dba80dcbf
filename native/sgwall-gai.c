/*
 * sgwall-gai.so: an LD_PRELOAD shim for iptables-restore / ip6tables-restore.
 *
 * iptables 1.8.9 parses every port of an x6-style match (`-m udp --dport 68`,
 * XTTYPE_PORTRC) with xtables_getportbyname(), which calls
 * getaddrinfo(NULL, "68", NULL, &res) even for a plain number. Without hints,
 * glibc applies AI_ADDRCONFIG (and sorts several results), and for both it asks
 * the kernel for every address of the namespace (__check_pf: one RTM_GETADDR
 * dump over NETLINK_ROUTE, which walks every network device). On a compute host
 * with thousands of tap/qbr/qvb/qvo devices that is milliseconds per port, the
 * bulk of a full restore.
 *
 * This shim answers exactly that call shape -- no host name, no hints, a service
 * made only of decimal digits -- by asking glibc for one numeric IPv4 datagram
 * result instead, which needs no address dump. The port number is the same
 * (a numeric service is parsed the same way whatever the hints), and the caller
 * only reads the port. Every other call goes to glibc unchanged.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stddef.h>
#include <sys/socket.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static int all_digits(const char *s) {
  if (s == NULL || *s == '\0') return 0;
  for (; *s != '\0'; ++s)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res) {
  static gai_fn real;
  if (real == NULL) real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  if (real == NULL) return EAI_SYSTEM;
  if (node == NULL && hints == NULL && all_digits(service)) {
    struct addrinfo numeric = {0};
    numeric.ai_flags = AI_NUMERICSERV;
    numeric.ai_family = AF_INET;
    numeric.ai_socktype = SOCK_DGRAM;
    return real(NULL, service, &numeric, res);
  }
  return real(node, service, hints, res);
}
