/**
 * Colleagues, departments and queues, for the transfer dialog's department tree (each
 * colleague's status and load) and the supervisor's force-assign: read when the dialog opens.
 */

import type { Agent } from "usher-client/gen/usher/v1/agent_pb";
import type { Queue } from "usher-client/gen/usher/v1/queue_pb";
import type { Department } from "usher-client/gen/usher/v1/tenant_pb";
import type { Api } from "./api.js";

export interface Colleague {
  /** `agents/{agent}`. */
  name: string;
  displayName: string;
  status: Agent["status"];
  customStatus: string;
  load: number;
  capacity: number;
  departments: string[];
}

export interface DepartmentBranch {
  /** `departments/{department}`; empty for colleagues in none. */
  name: string;
  displayName: string;
  colleagues: Colleague[];
}

export interface Directory {
  branches: DepartmentBranch[];
  departments: Department[];
  queues: Queue[];
}

/** Colleagues grouped by department (one colleague may appear under several), in name order. */
export function tree(colleagues: Colleague[], departments: Department[]): DepartmentBranch[] {
  const byName = (a: { displayName: string }, b: { displayName: string }) =>
    a.displayName.localeCompare(b.displayName);
  const branches: DepartmentBranch[] = departments
    .map((d) => ({
      name: d.name,
      displayName: d.displayName || d.name.replace("departments/", ""),
      colleagues: colleagues.filter((c) => c.departments.includes(d.name)).sort(byName),
    }))
    .sort(byName);
  const known = new Set(departments.map((d) => d.name));
  const none = colleagues.filter((c) => !c.departments.some((d) => known.has(d))).sort(byName);
  if (none.length) branches.push({ name: "", displayName: "", colleagues: none });
  return branches;
}

async function all<T>(read: (pageToken: string) => Promise<{ items: T[]; next: string }>): Promise<T[]> {
  const items: T[] = [];
  let token = "";
  do {
    const page = await read(token);
    items.push(...page.items);
    token = page.next;
  } while (token && items.length < 2_000);
  return items;
}

/** The colleagues by TeamChatService.ListColleagues (the engine's view: status and load now);
 * a credential that names no agent (an admin's API token) reads AdminService.ListAgents. */
export async function readColleagues(api: Api): Promise<Colleague[]> {
  try {
    const colleagues = await all((pageToken) =>
      api.teamChat
        .listColleagues({ pageSize: 500, pageToken })
        .then((p) => ({ items: p.colleagues, next: p.nextPageToken })),
    );
    return colleagues.map((c) => ({
      name: c.agent,
      displayName: c.displayName || c.agent.replace("agents/", ""),
      status: c.status,
      customStatus: c.customStatus,
      load: c.load,
      capacity: c.capacity,
      departments: c.departments,
    }));
  } catch {
    const agents = await all((pageToken) =>
      api.admin.listAgents({ pageSize: 500, pageToken }).then((p) => ({ items: p.agents, next: p.nextPageToken })),
    ).catch(() => [] as Agent[]);
    return agents.map((a) => ({
      name: a.name,
      displayName: a.displayName || a.name.replace("agents/", ""),
      status: a.status,
      customStatus: a.customStatus,
      load: a.load,
      capacity: a.capacity,
      departments: a.departments,
    }));
  }
}

/** Read the directory. Pieces the caller may not read are left empty. */
export async function readDirectory(api: Api): Promise<Directory> {
  const [colleagues, departments, queues] = await Promise.all([
    readColleagues(api),
    all((pageToken) =>
      api.admin
        .listDepartments({ pageSize: 500, pageToken })
        .then((p) => ({ items: p.departments, next: p.nextPageToken })),
    ).catch(() => [] as Department[]),
    all((pageToken) =>
      api.admin.listQueues({ pageSize: 500, pageToken }).then((p) => ({ items: p.queues, next: p.nextPageToken })),
    ).catch(() => [] as Queue[]),
  ]);
  return { branches: tree(colleagues, departments), departments, queues };
}
