/** Who is calling: the project, the user and whether the token is admin (Neutron's context). */
export interface RequestContext {
  readonly projectId: string
  readonly userId: string
  readonly isAdmin: boolean
  readonly roles: readonly string[]
}
