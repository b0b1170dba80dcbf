/**
 * `literal()` writes the parameters of pipelined PostgreSQL statements into SQL text: every value it
 * accepts must come back from PostgreSQL exactly as it went in (no string can end the literal and
 * start SQL of its own), whatever `standard_conforming_strings` says; what it cannot carry it refuses.
 */
import fc from 'fast-check'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { literal } from '../../src/store/db.js'
import { storeDialects } from '../helpers/dialects.js'

const postgres = storeDialects().find((d) => d.name === 'postgres')
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

describe('literal()', () => {
  it('refuses what no literal can carry', () => {
    expect(() => literal('a\u0000b')).toThrow(/NUL/)
    expect(() => literal(Number.NaN)).toThrow(/finite/)
    expect(() => literal(Number.POSITIVE_INFINITY)).toThrow(/finite/)
    expect(() => literal({})).toThrow(/object/)
    expect(literal(null)).toBe('NULL')
    expect(literal(undefined)).toBe('NULL')
    expect(literal(true)).toBe('true')
    expect(literal(-3)).toBe('-3')
    expect(literal("it's \\ here")).toBe("E'it''s \\\\ here'")
  })

  describe.skipIf(!postgres?.available)('on PostgreSQL', () => {
    let client: pg.Client
    beforeAll(async () => {
      client = new pg.Client({ connectionString: process.env.SGWALL_TEST_PG_URL })
      await client.connect()
    })
    afterAll(async () => {
      await client?.end()
    })

    // Strings that can be stored in a text column: well-formed UTF-16 without NUL, with the
    // characters that matter to SQL text weighted up.
    const tricky = fc.constantFrom("'", '\\', '"', ';', '$', '$$', '--', '/*', '*/', '\n', '\r', '\t', 'E', "\\'", '’')
    const text = fc
      .array(fc.oneof(tricky, fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' })), { maxLength: 8 })
      .map((parts) => parts.join(''))
      .filter((s) => !s.includes('\u0000') && !LONE_SURROGATE.test(s))

    for (const conforming of ['on', 'off'])
      it(`round-trips strings and numbers with standard_conforming_strings=${conforming}`, async () => {
        await client.query(`set standard_conforming_strings = ${conforming}`)
        await fc.assert(
          fc.asyncProperty(
            fc.array(text, { minLength: 1, maxLength: 5 }),
            fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })),
            async (strings, n) => {
              const sql = `select ${strings.map((s, k) => `${literal(s)}::text as "s${k}"`).join(', ')}, ${literal(n)}::float8 as "n"`
              const { rows } = await client.query(sql)
              expect(rows).toHaveLength(1)
              expect(strings.map((_, k) => rows[0][`s${k}`])).toEqual(strings)
              expect(rows[0].n).toBe(Object.is(n, -0) ? 0 : n)
            },
          ),
          { numRuns: 300 },
        )
      })
  })
})
