package jenkinstest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strings"
)

// config.xml is how a pre-2.94 client learns a job's label (assignedNode,
// canRoam) and a node's mode. Only those fields are faithful.

func xmlResp(s string) *response {
	return &response{status: http.StatusOK, ctype: "application/xml", body: []byte(s)}
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func nodeConfigXML(n *node) string {
	return fmt.Sprintf(`<?xml version='1.1' encoding='UTF-8'?>
<slave>
  <name>%s</name>
  <description>%s</description>
  <remoteFS>/home/jenkins</remoteFS>
  <numExecutors>%d</numExecutors>
  <mode>%s</mode>
  <retentionStrategy class="hudson.slaves.RetentionStrategy$Always"/>
  <launcher class="hudson.slaves.JNLPLauncher"/>
  <label>%s</label>
  <nodeProperties/>
</slave>
`, esc(n.name), esc(n.description), n.numExecutors, n.mode, esc(strings.Join(n.labels, " ")))
}

func (e *Emulator) jobConfigXML(j *job) string {
	if j.folder {
		return `<?xml version='1.1' encoding='UTF-8'?>
<com.cloudbees.hudson.plugins.folder.Folder plugin="cloudbees-folder">
  <properties/>
</com.cloudbees.hudson.plugins.folder.Folder>
`
	}
	var b strings.Builder
	b.WriteString("<?xml version='1.1' encoding='UTF-8'?>\n<project>\n")
	fmt.Fprintf(&b, "  <description>%s</description>\n  <keepDependencies>false</keepDependencies>\n", esc(j.spec.Description))
	if j.parameterized() {
		b.WriteString("  <properties>\n    <hudson.model.ParametersDefinitionProperty>\n      <parameterDefinitions>\n")
		for _, d := range j.spec.Params {
			dc, _ := paramClass(d.Type)
			fmt.Fprintf(&b, "        <%s>\n          <name>%s</name>\n          <description>%s</description>\n", dc, esc(d.Name), esc(d.Description))
			if d.Type == ChoiceParam {
				b.WriteString("          <choices class=\"java.util.Arrays$ArrayList\"><a class=\"string-array\">\n")
				for _, c := range d.Choices {
					fmt.Fprintf(&b, "            <string>%s</string>\n", esc(c))
				}
				b.WriteString("          </a></choices>\n")
			} else {
				fmt.Fprintf(&b, "          <defaultValue>%s</defaultValue>\n", esc(d.Default))
			}
			fmt.Fprintf(&b, "        </%s>\n", dc)
		}
		b.WriteString("      </parameterDefinitions>\n    </hudson.model.ParametersDefinitionProperty>\n  </properties>\n")
	} else {
		b.WriteString("  <properties/>\n")
	}
	if strings.TrimSpace(j.spec.Label) != "" {
		fmt.Fprintf(&b, "  <assignedNode>%s</assignedNode>\n  <canRoam>false</canRoam>\n", esc(j.spec.Label))
	} else {
		b.WriteString("  <canRoam>true</canRoam>\n")
	}
	fmt.Fprintf(&b, "  <disabled>%t</disabled>\n  <blockBuildWhenDownstreamBuilding>false</blockBuildWhenDownstreamBuilding>\n", j.spec.Disabled)
	fmt.Fprintf(&b, "  <blockBuildWhenUpstreamBuilding>false</blockBuildWhenUpstreamBuilding>\n  <concurrentBuild>%t</concurrentBuild>\n", j.spec.Concurrent)
	b.WriteString("  <builders/>\n  <publishers/>\n  <buildWrappers/>\n</project>\n")
	return b.String()
}
