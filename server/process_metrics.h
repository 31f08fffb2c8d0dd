// ProcessMetrics: what operators look at on every server, in the Prometheus
// client conventions: process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds,
// process_start_time_seconds, and microgpt_build_info{component, version} 1.
// Read from /proc and getrusage at each scrape. MetricsEndpoint serves it
// beside each server's own metrics. Header-only, as MetricsEndpoint.
#ifndef MICROGPT_SERVER_PROCESS_METRICS_H_
#define MICROGPT_SERVER_PROCESS_METRICS_H_

#include <dirent.h>
#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#ifndef MICROGPT_VERSION
#define MICROGPT_VERSION "unknown"
#endif

namespace microgpt {

class ProcessMetrics : public prometheus::Collectable {
 public:
  // `component`: "trainer" or "generator", the build_info label.
  explicit ProcessMetrics(std::string component)
      : component_(std::move(component)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families;
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const double cpu =
        static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
        1e-6 * static_cast<double>(usage.ru_utime.tv_usec +
                                   usage.ru_stime.tv_usec);
    families.push_back(Family("process_cpu_seconds_total",
                              "User and system CPU time of the process.",
                              prometheus::MetricType::Counter, cpu));
    long pages_virtual = 0, pages_resident = 0;
    if (std::FILE* statm = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(statm, "%ld %ld", &pages_virtual, &pages_resident) != 2) {
        pages_virtual = pages_resident = 0;
      }
      std::fclose(statm);
    }
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    families.push_back(Family("process_resident_memory_bytes",
                              "Resident memory of the process.",
                              prometheus::MetricType::Gauge,
                              page * static_cast<double>(pages_resident)));
    families.push_back(Family("process_virtual_memory_bytes",
                              "Virtual memory of the process.",
                              prometheus::MetricType::Gauge,
                              page * static_cast<double>(pages_virtual)));
    families.push_back(Family("process_open_fds", "Open file descriptors.",
                              prometheus::MetricType::Gauge, OpenFds()));
    rlimit files{};
    getrlimit(RLIMIT_NOFILE, &files);
    families.push_back(Family(
        "process_max_fds", "The limit of open file descriptors.",
        prometheus::MetricType::Gauge, static_cast<double>(files.rlim_cur)));
    families.push_back(Family("process_start_time_seconds",
                              "Start time of the process, Unix seconds.",
                              prometheus::MetricType::Gauge, StartTime()));
    prometheus::MetricFamily build =
        Family("microgpt_build_info", "1, labelled with the build's version.",
               prometheus::MetricType::Gauge, 1);
    build.metric.front().label = {{"component", component_},
                                  {"version", MICROGPT_VERSION}};
    families.push_back(std::move(build));
    return families;
  }

 private:
  static prometheus::MetricFamily Family(std::string name, std::string help,
                                         prometheus::MetricType type,
                                         double value) {
    prometheus::MetricFamily family;
    family.name = std::move(name);
    family.help = std::move(help);
    family.type = type;
    prometheus::ClientMetric metric;
    if (type == prometheus::MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
    family.metric.push_back(std::move(metric));
    return family;
  }

  static double OpenFds() {
    DIR* dir = opendir("/proc/self/fd");
    if (dir == nullptr) return 0;
    double count = 0;
    while (const dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    closedir(dir);
    return count - 1;  // the directory stream's own descriptor
  }

  // /proc/self/stat's start time (clock ticks after boot, field 22) plus
  // /proc/stat's boot time.
  static double StartTime() {
    std::ifstream stat("/proc/self/stat");
    std::string line;
    std::getline(stat, line);
    const size_t end_of_name = line.rfind(')');
    if (end_of_name == std::string::npos) return 0;
    std::istringstream fields(line.substr(end_of_name + 2));
    std::string field;
    // Field 3 (state) is the first after the name; 22 is the 20th from it.
    for (int i = 3; i <= 22 && fields >> field; ++i) {
    }
    double boot = 0;
    std::ifstream proc_stat("/proc/stat");
    for (std::string key; proc_stat >> key;) {
      if (key == "btime") {
        proc_stat >> boot;
        break;
      }
    }
    return boot + std::stod(field.empty() ? "0" : field) /
                      static_cast<double>(sysconf(_SC_CLK_TCK));
  }

  const std::string component_;
};

}  // namespace microgpt

#endif  // MICROGPT_SERVER_PROCESS_METRICS_H_
