/** Reading a scenario file for CLI commands: JSON errors and validation issues become AppError(InvalidInput). */
import { readFile } from 'node:fs/promises'
import { AppError } from '../errors.js'
import type { Scenario } from '../model/types.js'
import { parseScenario } from '../model/validate.js'

export async function readScenarioFile(path: string): Promise<Scenario> {
  let text: string
  try {
    text = path === '-' ? await readStdin() : await readFile(path, 'utf8')
  } catch (err) {
    throw new AppError('InvalidInput', `cannot read scenario ${path}: ${(err as Error).message}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new AppError('InvalidInput', `scenario ${path} is not valid JSON: ${(err as Error).message}`)
  }
  const { scenario, issues } = parseScenario(json)
  if (!scenario) {
    const lines = issues.map((i) => `  ${i.path}: ${i.message}`).join('\n')
    throw new AppError('InvalidInput', `scenario ${path} has ${issues.length} problem(s):`, lines)
  }
  return scenario
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}
